"""Per-pixel reconstruction losses: ``MSELoss``, ``L1Loss``, ``CharbonnierLoss``.

All take ``pred`` and ``target`` of the same shape (N, C, H, W) (any shape works, as long as
both agree) and an optional ``weight`` broadcastable to that shape, e.g. a (N, 1, H, W) mask.

Reductions, with ``l`` the element-wise loss and ``w`` the weight expanded to ``l``'s shape:

- ``'none'``: ``loss_weight * l * w`` (same shape as ``pred``);
- ``'sum'``:  ``loss_weight * sum(l * w)``;
- ``'mean'``: ``loss_weight * sum(l * w) / sum(w)``, a weighted average, which is the plain
  mean when no weight is given (an all-zero weight gives 0).

Half / bfloat16 inputs are promoted to float32 before the reduction, so a mixed-precision
step does not lose the loss to rounding; the gradient returns in the input's dtype.
"""

from __future__ import annotations

from typing import Literal, Optional, get_args

import torch
from torch import nn

from lptn.losses import LOSS_REGISTRY
from lptn.platform.number_check import real_number

# A Literal, so that the option check (lptn.engine.option_check) refuses other values early.
Reduction = Literal["none", "mean", "sum"]
REDUCTIONS = get_args(Reduction)


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is one of :data:`REDUCTIONS`, else raise ``ValueError``."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction: unsupported value {reduction!r}; "
            f"valid values are {', '.join(map(repr, REDUCTIONS))}"
        )
    return reduction


def check_loss_weight(loss_weight: float) -> float:
    """Return ``loss_weight`` as a float; a non-number raises ``ValueError``."""
    return real_number(loss_weight, "loss_weight")


def _promote(x: torch.Tensor) -> torch.Tensor:
    # float16/bfloat16 sums over a whole batch of pixels lose several digits.
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def weighted_reduce(
    loss: torch.Tensor, weight: Optional[torch.Tensor], reduction: str
) -> torch.Tensor:
    """Apply ``weight`` (broadcast to ``loss``) and ``reduction`` as described in the module."""
    if weight is not None:
        try:
            weight = torch.broadcast_to(_promote(weight), loss.shape)
        except RuntimeError as err:
            raise ValueError(
                f"weight of shape {tuple(weight.shape)} does not broadcast to the "
                f"loss shape {tuple(loss.shape)}"
            ) from err
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if weight is None:
        return loss.mean()
    # Weighted average; an all-zero weight means "no pixel counts", hence 0 rather than NaN.
    return loss.sum() / weight.sum().clamp_min(torch.finfo(loss.dtype).tiny)


class _PixelLoss(nn.Module):
    """Shared option handling; subclasses implement :meth:`elementwise`."""

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.loss_weight = check_loss_weight(loss_weight)
        self.reduction = check_reduction(reduction)

    def elementwise(self, diff: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """``pred``, ``target``: same shape, e.g. (N, C, H, W) in [0, 1]; returns the loss."""
        if pred.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: pred shape {tuple(pred.shape)} differs "
                f"from target shape {tuple(target.shape)}"
            )
        diff = _promote(pred) - _promote(target)
        return self.loss_weight * weighted_reduce(self.elementwise(diff), weight, self.reduction)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, reduction={self.reduction!r}"


@LOSS_REGISTRY.register
class MSELoss(_PixelLoss):
    """Squared error ``(pred - target)^2``."""

    def elementwise(self, diff: torch.Tensor) -> torch.Tensor:
        return diff * diff


@LOSS_REGISTRY.register
class L1Loss(_PixelLoss):
    """Absolute error ``|pred - target|``."""

    def elementwise(self, diff: torch.Tensor) -> torch.Tensor:
        return diff.abs()


@LOSS_REGISTRY.register
class CharbonnierLoss(_PixelLoss):
    """Charbonnier (smooth L1) error ``sqrt((pred - target)^2 + eps)``.

    ``eps`` sits under the square root (BasicSR's convention), so the loss of a perfect
    prediction is ``sqrt(eps)`` and the gradient at zero error is 0 instead of undefined.
    """

    def __init__(
        self, loss_weight: float = 1.0, reduction: Reduction = "mean", eps: float = 1e-12
    ) -> None:
        super().__init__(loss_weight, reduction)
        self.eps = real_number(eps, "eps", 0, low_open=True)

    def elementwise(self, diff: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(diff * diff + self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
