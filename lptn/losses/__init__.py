"""Training losses, resolved from ``pixel_opt`` / ``gan_opt`` / ``gp_opt`` by ``type``.

A new loss is one new ``*_loss.py`` file in this folder that registers its class.
``gp_opt`` has no ``type`` in the released configs, so it is built by
:func:`build_gradient_penalty`, which defaults the type to ``GradientPenaltyLoss``.
"""

from __future__ import annotations

from typing import Any, Dict

from torch import nn

from lptn.registry import Registry, build_from_registry, import_modules_with_suffix

LOSS_REGISTRY: Registry = Registry("loss")


def build_loss(opt: Dict[str, Any], key_path: str = "pixel_opt") -> nn.Module:
    """Build a loss from its option block, e.g. ``{'type': 'MSELoss', 'loss_weight': 1000}``.

    ``key_path`` names the block (``pixel_opt``, ``gan_opt``) in error messages.
    """
    return build_from_registry(LOSS_REGISTRY, dict(opt), key_path)


import_modules_with_suffix(__name__, __file__, "_loss")

# Imported after the registry exists: it registers GradientPenaltyLoss.
from lptn.losses.gradient_penalty import (  # noqa: E402
    GradientPenaltyLoss,
    build_gradient_penalty,
    gradient_penalty,
)

__all__ = [
    "LOSS_REGISTRY",
    "build_loss",
    "build_gradient_penalty",
    "gradient_penalty",
    "GradientPenaltyLoss",
]
