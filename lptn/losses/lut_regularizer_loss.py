"""The 3D-LUT regularisers of Zeng et al. (TPAMI 2020): smoothness and monotonicity.

Both act on the generator's basis LUTs (N, 3, S, S, S), layout as in
:mod:`lptn.archs.lut3d_arch` (``lut[:, c, ib, ig, ir]``). With ``d`` the difference of
neighbouring entries along one input axis, ``lut[.., i] - lut[.., i + 1]``:

- smoothness: ``loss_weight * (sum_n sum_axes mean(d^2) + mean(w^2))``, total variation of every
  basis plus the squared mixing weights ``w`` (B, N) of the batch, as the paper pairs them;
- monotonicity: ``loss_weight * sum_n sum_axes mean(relu(d))``, which is 0 when every output
  channel grows (or stays) with every input channel.

The identity LUT scores 0 on monotonicity; its TV is ``1 / (S - 1)^2`` (a third of its entries
step by ``1 / (S - 1)`` along each axis), as the paper's TV is of the LUT, not of its change
from the identity; constant LUTs (the zero bases) score 0 on both. Default weights are the
paper's (1e-4, 10).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from lptn.losses import LOSS_REGISTRY
from lptn.losses.pixel_loss import check_loss_weight


def _check_luts(luts: torch.Tensor, who: str) -> torch.Tensor:
    if (
        luts.dim() != 5
        or luts.shape[1] != 3
        or not (luts.shape[2] == luts.shape[3] == luts.shape[4])
    ):
        raise ValueError(f"{who}: basis LUTs must be (N, 3, S, S, S), got {tuple(luts.shape)}")
    return luts.float()


def _axis_differences(luts: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """``lut[i] - lut[i + 1]`` along the red, green and blue input axes (dims 4, 3, 2)."""
    return tuple(
        luts.narrow(d, 0, luts.shape[d] - 1) - luts.narrow(d, 1, luts.shape[d] - 1)
        for d in (4, 3, 2)
    )


def lut_total_variation(luts: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S, S) -> scalar: ``sum_n sum_axes mean(d^2)`` (module docstring)."""
    return sum(d.pow(2).flatten(1).mean(1).sum() for d in _axis_differences(luts))  # type: ignore[return-value]


def lut_monotonicity(luts: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S, S) -> scalar: ``sum_n sum_axes mean(relu(d))`` (module docstring)."""
    return sum(d.relu().flatten(1).mean(1).sum() for d in _axis_differences(luts))  # type: ignore[return-value]


@LOSS_REGISTRY.register
class LUTSmoothnessLoss(nn.Module):
    """Total variation of the basis LUTs plus the mean squared mixing weight (the paper's R_s)."""

    def __init__(self, loss_weight: float = 1e-4) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight(loss_weight)

    def forward(self, luts: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``luts`` (N, 3, S, S, S); ``weights`` (B, N) or None (then only the TV term)."""
        value = lut_total_variation(_check_luts(luts, type(self).__name__))
        if weights is not None:
            value = value + weights.float().pow(2).mean()
        return self.loss_weight * value

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}"


@LOSS_REGISTRY.register
class LUTMonotonicityLoss(nn.Module):
    """Penalises every decrease of an output channel along an input axis (the paper's R_m)."""

    def __init__(self, loss_weight: float = 10.0) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight(loss_weight)

    def forward(self, luts: torch.Tensor) -> torch.Tensor:
        """``luts`` (N, 3, S, S, S) -> scalar."""
        return self.loss_weight * lut_monotonicity(_check_luts(luts, type(self).__name__))

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}"
