"""WGAN-GP gradient penalty (Gulrajani et al. 2017), the ``gp_opt`` term of docs/REFERENCE.md s. 4.

``penalty = mean_i (||grad_x D(x_hat_i)||_2 - 1)^2`` with
``x_hat_i = a_i * real_i + (1 - a_i) * fake_i`` and ``a_i ~ U(0, 1)`` per sample; the norm runs
over all non-batch dimensions.

Choice for ``gp_opt``: the released config writes ``gp_opt: {loss_weight: 100}`` with no
``type``. :func:`build_gradient_penalty` defaults the type to :class:`GradientPenaltyLoss`, a
module whose forward returns ``loss_weight * gradient_penalty(...)``; so the model adds
``cri_gp(net_d, real, fake)`` to the discriminator loss without multiplying anything itself.
Unlike ``GANLoss.loss_weight``, this weight applies to the discriminator loss (the penalty
exists only there).

Mixed precision: with an fp16 ``torch.amp.GradScaler`` the inner gradient can underflow in
half precision. torch's AMP recipe for gradient penalties computes it on the *scaled* output
and unscales it before use; pass ``scale=scaler.get_scale()`` (or the scaler's scale tensor) and
this function differentiates ``scale * sum(D(x_hat))`` and divides the gradient by ``scale``
before taking the norm. The value equals the unscaled one; an overflow in the scaled gradient
gives a non-finite penalty, which the scaler's step then skips as for any other overflow.
Caution, seen with fp16 autocast on the CPU: the outer backward through the released critic's
InstanceNorm can overflow in half precision whatever the scale (its second derivative grows
like 1 / sigma^3 for a low-variance channel); bf16 has the float32 range and does not.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Union

import torch
from torch import nn

from lptn.losses import LOSS_REGISTRY
from lptn.losses.pixel_loss import check_loss_weight
from lptn.platform.number_check import real_number
from lptn.platform.option_schema import GRADIENT_PENALTY, fill_defaults
from lptn.registry import build_from_registry

Scale = Union[float, torch.Tensor]


def _check_scale(scale: Scale) -> None:
    if isinstance(scale, torch.Tensor):
        if scale.numel() != 1:
            raise ValueError(
                f"scale: expected a single value, got a tensor of shape {tuple(scale.shape)}"
            )
        return
    real_number(scale, "scale", 0, low_open=True)


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: Optional[torch.Tensor] = None,
    scale: Scale = 1.0,
    alpha: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """WGAN-GP penalty of ``discriminator`` between ``real`` and ``fake`` (a scalar tensor).

    Args:
        discriminator: maps (N, C, H, W) images to scores of any shape whose entries each
            depend on one sample only (true for the released critic: InstanceNorm, no
            BatchNorm).
        real: (N, C, H, W) target-domain images, used as a constant.
        fake: (N, C, H, W) generator outputs, used as a constant: the penalty trains the
            discriminator, never the generator.
        weight: optional tensor broadcastable to (N, C, H, W) multiplying the input gradient
            before the norm, to leave masked pixels out of the constraint.
        scale: the GradScaler scale when training with fp16 (see the module docstring); 1.0
            otherwise. The result does not depend on it.
        alpha: optional interpolation weights, (N,) or (N, 1, 1, 1); drawn as
            ``torch.rand((N, 1, 1, 1))`` on ``real``'s device when omitted.

    Returns:
        ``mean((||grad||_2 - 1)^2)``, float32 or wider, with a graph to the discriminator's
        parameters (``create_graph=True``) so ``penalty.backward()`` trains it.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient_penalty: real shape {tuple(real.shape)} differs from fake "
            f"shape {tuple(fake.shape)}"
        )
    if real.dim() < 2:
        raise ValueError(
            f"gradient_penalty: expected batched inputs (N, ...), got shape {tuple(real.shape)}"
        )
    _check_scale(scale)
    batch = real.shape[0]
    per_sample_shape = (batch,) + (1,) * (real.dim() - 1)
    if alpha is None:
        alpha = torch.rand(per_sample_shape, device=real.device, dtype=real.dtype)
    elif alpha.numel() != batch:
        raise ValueError(
            f"alpha: expected one value per sample ({batch}), got shape {tuple(alpha.shape)}"
        )
    alpha = alpha.reshape(per_sample_shape).to(device=real.device, dtype=real.dtype)

    with torch.enable_grad():
        # A fresh leaf: gradients flow to x_hat (and on to D's parameters), not to G.
        x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        # Summing is exact per sample: score i depends on x_hat[i] only. The float32 sum keeps
        # a large scale from overflowing an fp16 score total.
        scores = discriminator(x_hat).float()
        (grad,) = torch.autograd.grad(outputs=scores.sum() * scale, inputs=x_hat, create_graph=True)
        if grad.dtype in (torch.float16, torch.bfloat16):
            grad = grad.float()
        grad = grad / scale
        if weight is not None:
            grad = grad * weight
        norms = grad.flatten(1).norm(2, dim=1)
        return ((norms - 1) ** 2).mean()


@LOSS_REGISTRY.register
class GradientPenaltyLoss(nn.Module):
    """``loss_weight * gradient_penalty(...)``; built from ``gp_opt``."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight(loss_weight)

    def forward(
        self,
        discriminator: Callable[[torch.Tensor], torch.Tensor],
        real: torch.Tensor,
        fake: torch.Tensor,
        weight: Optional[torch.Tensor] = None,
        scale: Scale = 1.0,
        alpha: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Weighted penalty; arguments as for :func:`gradient_penalty`."""
        return self.loss_weight * gradient_penalty(
            discriminator, real, fake, weight=weight, scale=scale, alpha=alpha
        )

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}"


def build_gradient_penalty(opt: Dict[str, Any], key_path: str = "gp_opt") -> nn.Module:
    """Build the penalty from ``gp_opt``, e.g. ``{'loss_weight': 100}`` (type optional)."""
    if not isinstance(opt, dict):
        raise KeyError(
            f"{key_path}: expected a mapping such as {{'loss_weight': 100}}, got {opt!r}"
        )
    # The schema's default type (option_schema.GRADIENT_PENALTY) when the block names none.
    opt = fill_defaults(GRADIENT_PENALTY, opt, key_path)
    return build_from_registry(LOSS_REGISTRY, opt, key_path)
