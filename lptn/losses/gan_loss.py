"""Adversarial losses on raw critic / discriminator outputs (``gan_opt``).

``x`` is the discriminator output of any shape (the released critic gives (N, 1, 1, 1)).
Every value below is a mean over all elements of ``x``:

============== ============================ ============================ =====================
``gan_type``   real target                  fake target                  generator (not disc)
============== ============================ ============================ =====================
standard, wgan ``-mean(x)``                 ``mean(x)``                  same as the disc
vanilla        ``BCEWithLogits(x, r)``      ``BCEWithLogits(x, f)``      same as the disc
lsgan          ``mean((x - r)^2)``          ``mean((x - f)^2)``          same as the disc
hinge          ``mean(relu(1 - x))``        ``mean(relu(1 + x))``        ``-mean(x)`` (real),
                                                                         ``mean(x)`` (fake)
wgan_softplus  ``mean(softplus(-x))``       ``mean(softplus(x))``        same as the disc
============== ============================ ============================ =====================

with ``r = real_label_val`` and ``f = fake_label_val`` (used by vanilla and lsgan only).
``standard`` is the name the released LPTN config gives to the WGAN critic loss
(docs/REFERENCE.md section 4); ``wgan`` is an alias.

``loss_weight`` scales the generator-side loss only (``is_disc=False``). The discriminator
loss is returned unweighted, as in BasicSR: the discriminator's objective is balanced by its
own optimiser and by ``gp_opt.loss_weight``, not by the generator's GAN weight.
"""

from __future__ import annotations

from typing import Callable, Dict, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from lptn.losses import LOSS_REGISTRY
from lptn.losses.pixel_loss import check_loss_weight
from lptn.platform.number_check import real_number

# A Literal, so that the option check (lptn.engine.option_check) refuses other values early.
GanType = Literal["standard", "wgan", "vanilla", "lsgan", "hinge", "wgan_softplus"]
GAN_TYPES = get_args(GanType)


@LOSS_REGISTRY.register
class GANLoss(nn.Module):
    """Adversarial loss of the type ``gan_type``; see the module docstring for the formulas."""

    def __init__(
        self,
        gan_type: GanType,
        real_label_val: float = 1.0,
        fake_label_val: float = 0.0,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if gan_type not in GAN_TYPES:
            raise ValueError(
                f"gan_type: unsupported value {gan_type!r}; "
                f"valid values are {', '.join(map(repr, GAN_TYPES))}"
            )
        self.gan_type = gan_type
        self.real_label_val = real_number(real_label_val, "real_label_val")
        self.fake_label_val = real_number(fake_label_val, "fake_label_val")
        self.loss_weight = check_loss_weight(loss_weight)
        losses: Dict[str, Callable[[torch.Tensor, bool, bool], torch.Tensor]] = {
            "standard": self._wgan,
            "wgan": self._wgan,
            "vanilla": self._vanilla,
            "lsgan": self._lsgan,
            "hinge": self._hinge,
            "wgan_softplus": self._wgan_softplus,
        }
        self._loss = losses[gan_type]

    def _label(self, x: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        value = self.real_label_val if target_is_real else self.fake_label_val
        return torch.full_like(x, value)

    @staticmethod
    def _wgan(x: torch.Tensor, target_is_real: bool, is_disc: bool) -> torch.Tensor:
        return -x.mean() if target_is_real else x.mean()

    def _vanilla(self, x: torch.Tensor, target_is_real: bool, is_disc: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(x, self._label(x, target_is_real))

    def _lsgan(self, x: torch.Tensor, target_is_real: bool, is_disc: bool) -> torch.Tensor:
        return F.mse_loss(x, self._label(x, target_is_real))

    @staticmethod
    def _hinge(x: torch.Tensor, target_is_real: bool, is_disc: bool) -> torch.Tensor:
        if is_disc:
            return F.relu(1 - x).mean() if target_is_real else F.relu(1 + x).mean()
        # The generator pushes the score up without a margin.
        return -x.mean() if target_is_real else x.mean()

    @staticmethod
    def _wgan_softplus(x: torch.Tensor, target_is_real: bool, is_disc: bool) -> torch.Tensor:
        return F.softplus(-x).mean() if target_is_real else F.softplus(x).mean()

    def forward(
        self,
        input: torch.Tensor,
        target_is_real: bool,
        is_disc: bool = False,
    ) -> torch.Tensor:
        """Scalar loss for the discriminator output ``input`` (any shape).

        Args:
            input: raw scores (logits for ``vanilla``), e.g. (N, 1, 1, 1).
            target_is_real: whether ``input`` should be judged real.
            is_disc: True for the discriminator's own loss (then ``loss_weight`` is not applied).
        """
        if not isinstance(target_is_real, bool) or not isinstance(is_disc, bool):
            raise TypeError(
                "GANLoss: target_is_real and is_disc must be bool, got "
                f"{type(target_is_real).__name__} and {type(is_disc).__name__}"
            )
        # Low-precision scores are promoted so the mean and log terms stay accurate.
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        loss = self._loss(x, target_is_real, is_disc)
        return loss if is_disc else loss * self.loss_weight

    def extra_repr(self) -> str:
        return (
            f"gan_type={self.gan_type!r}, real_label_val={self.real_label_val}, "
            f"fake_label_val={self.fake_label_val}, loss_weight={self.loss_weight}"
        )
