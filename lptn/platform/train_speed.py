"""Training-step speed options of the ``train`` block: ``channels_last`` and ``compile``.

Parsed once by :func:`train_speed_options` into a :class:`TrainSpeed`, which the training model
asks at three points (and nowhere else): :meth:`TrainSpeed.prepare_network` when a network is
built, :meth:`TrainSpeed.batch_to` when a batch is fed in, :meth:`TrainSpeed.compile` after
the runtime has wrapped the network for several processes (DDP first, then compile, as torch
recommends). Only the generator is compiled: the critic's gradient penalty needs a double
backward, which compiled graphs do not support. What each option does and where it pays:
docs/training.md (the ``train`` table and "One training step").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, cast

import torch
from torch import nn

from lptn.platform.amp_backend import amp_config
from lptn.platform.compilation import (
    COMPILE_MODES,
    CUDAGRAPH_MODES,
    CompileUnavailable,
    compile_mode_option,
)
from lptn.platform.compilation import check_compile_support as _check_support


@dataclass(frozen=True)
class TrainSpeed:
    """``train.channels_last`` and ``train.compile`` checked; ``compile_mode`` None = eager."""

    channels_last: bool = False
    compile_mode: Optional[str] = None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare_network(self, net: nn.Module) -> nn.Module:
        """``net`` with its 4-D parameters and buffers in this memory format (in place)."""
        if self.channels_last:
            # Module.to keeps the Parameter objects (only their data is replaced), so an
            # optimiser built before or after sees the same tensors. Module.to accepts
            # memory_format at run time, but torch's overloads for it leave the keyword out.
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return net

    def batch_to(self, tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``tensor`` on ``device``, in this memory format when it is an image batch."""
        if self.channels_last and tensor.dim() == 4:
            return tensor.to(device, memory_format=torch.channels_last, non_blocking=True)
        return tensor.to(device, non_blocking=True)

    def compile(self, net: nn.Module) -> nn.Module:
        """``torch.compile(net, mode=...)``, or ``net`` itself when compiling is off. Call it
        once, after any DistributedDataParallel wrapping."""
        if self.compile_mode is None:
            return net
        # Compiling a Module gives an OptimizedModule (a Module); the stubs say Callable.
        return cast(nn.Module, torch.compile(net, mode=self.compile_mode))

    def begin_step(self) -> None:
        """Mark a new training step for CUDA-graph modes: buffers of the previous step's
        compiled outputs may then be reused (nothing of them is kept across steps)."""
        if self.compile_mode in CUDAGRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()

    def describe(self) -> str:
        parts = []
        if self.channels_last:
            parts.append("channels_last")
        if self.compile_mode is not None:
            parts.append(f"compiled generator ({self.compile_mode})")
        return ", ".join(parts) or "eager, contiguous"


def train_speed_options(opt: Dict[str, Any]) -> TrainSpeed:
    """Parse ``train.channels_last`` and ``train.compile`` from the options; errors name the
    key. Raises :class:`ValueError` for bad values and for ``compile`` with apex AMP."""
    # Imported here: the schema imports this layer.
    from lptn.platform.option_schema import TRAIN, fill_defaults

    train = fill_defaults(TRAIN, opt.get("train"), "train")
    channels_last: bool = train["channels_last"]
    mode = compile_mode_option(train["compile"], "train.compile")
    if mode is not None and amp_config(opt).uses_apex:
        # apex O1 patches torch functions at run time and O2 keeps fp32 master copies outside
        # the module: neither is something dynamo can trace; native autocast works with it.
        raise ValueError(
            "train.compile: not supported with train.amp.backend: apex; use "
            "backend: native (torch autocast) or compile: false"
        )
    return TrainSpeed(channels_last=channels_last, compile_mode=mode)


def check_compile_support(speed: TrainSpeed, device: torch.device) -> None:
    """Raise :class:`CompileUnavailable`, naming ``train.compile``, when torch.compile cannot
    run on ``device``."""
    _check_support(speed.compile_mode, device, "train.compile")


__all__ = [
    "COMPILE_MODES",
    "CompileUnavailable",
    "TrainSpeed",
    "check_compile_support",
    "train_speed_options",
]
