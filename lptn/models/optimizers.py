"""Optimisers from ``train.optim_g`` / ``train.optim_d`` by ``type`` (``Adam``, ``AdamW``).

Every key other than ``type`` is passed to the optimiser (``lr``, ``betas``,
``weight_decay``, ``eps``, ``amsgrad``, ``foreach``, ``fused``...); ``betas`` may be a YAML
list. ``fused: true`` selects torch's fused Adam/AdamW kernel (one kernel for all parameters;
CUDA, CPU and MPS in recent torch); it cannot be combined with ``foreach: true``. The fused
types of the precision layer (``FusedAdam``, ``NpuFusedAdam``... see
:mod:`lptn.platform.amp_backend`) are registered too; they are imported only when used.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

import torch
from torch.optim import Optimizer

from lptn.platform.amp_backend import FUSED_OPTIMIZERS, fused_optimizer_factory
from lptn.platform.number_check import real_number
from lptn.registry import Registry

OPTIMIZER_REGISTRY = Registry("optimizer")
OPTIMIZER_REGISTRY.register(torch.optim.Adam, name="Adam")
OPTIMIZER_REGISTRY.register(torch.optim.AdamW, name="AdamW")
for _name in FUSED_OPTIMIZERS:
    OPTIMIZER_REGISTRY.register(fused_optimizer_factory(_name), name=_name)


def build_optimizer(
    params: Iterable[torch.nn.Parameter], opt: Dict[str, Any], key_path: str = "train.optim_g"
) -> Optimizer:
    """Optimiser over ``params`` from e.g. ``{'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]}``.

    Raises:
        KeyError: no ``type`` or an unknown one (naming ``key_path``, listing the known types).
        ValueError: a bad value (``lr`` missing or not positive, ``betas`` not two numbers...).
    """
    if not isinstance(opt, dict) or "type" not in opt:
        raise KeyError(
            f"{key_path}: needs a 'type' key (one of "
            f"{', '.join(OPTIMIZER_REGISTRY.names())}), got {opt!r}"
        )
    cls = OPTIMIZER_REGISTRY.get(opt["type"], f"{key_path}.type")
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    real_number(kwargs.get("lr"), f"{key_path}.lr", 0, low_open=True)
    if "betas" in kwargs:
        betas = kwargs["betas"]
        if not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise ValueError(f"{key_path}.betas: expected two numbers, got {betas!r}")
        kwargs["betas"] = (float(betas[0]), float(betas[1]))
    for flag in ("fused", "foreach"):
        # torch takes any truthy value here; a string or a number is a typo, not a choice.
        if flag in kwargs and kwargs[flag] is not None and not isinstance(kwargs[flag], bool):
            raise ValueError(f"{key_path}.{flag}: expected true, false or ~, got {kwargs[flag]!r}")
    try:
        return cls(list(params), **kwargs)
    except (TypeError, ValueError, RuntimeError) as err:
        raise type(err)(f"{key_path} ({opt['type']}): {err}") from err


__all__ = ["OPTIMIZER_REGISTRY", "build_optimizer"]
