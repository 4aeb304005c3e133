"""Mixed precision for training: ``train.amp`` parsed, loss scaling, apex, fused optimisers.

torch autocast with a GradScaler per network (``backend: native``), or NVIDIA's / Ascend's apex
AMP (``backend: apex``). torch's fused optimisers are refused with apex, naming the key: apex
swaps the optimiser's parameters for master copies and patches ``step``, which torch's fused
path is not written for. :func:`check_training_requirements` names what to install before any
data is read. This module and :mod:`lptn.platform.device_backend` are the only places that
import apex or torch_npu. Options: docs/DISTRIBUTED_AND_NPU.md and docs/OPTIONS.md.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn
from torch.optim import Optimizer

AMP_BACKENDS = ("native", "apex")
AMP_DTYPES = {"bf16": "bf16", "fp16": "fp16", "bfloat16": "bf16", "float16": "fp16"}
APEX_OPT_LEVELS = ("O0", "O1", "O2", "O3")
_APEX_ONLY_KEYS = ("opt_level", "loss_scale", "combine_grad")

#: optimiser classes of ``apex.optimizers`` (NVIDIA build, then the Ascend build's NPU ones)
FUSED_OPTIMIZERS = (
    "FusedAdam",
    "FusedAdagrad",
    "FusedLAMB",
    "FusedMixedPrecisionLamb",
    "FusedNovoGrad",
    "FusedSGD",
    "NpuFusedAdam",
    "NpuFusedAdamW",
    "NpuFusedAdamP",
    "NpuFusedAdadelta",
    "NpuFusedBertAdam",
    "NpuFusedLamb",
    "NpuFusedRMSprop",
    "NpuFusedRMSpropTF",
    "NpuFusedSGD",
)

APEX_INSTALL_HINT = (
    "install apex: on Ascend NPUs the Ascend build of apex "
    "(https://gitee.com/ascend/apex, built for your torch_npu and CANN), on "
    "NVIDIA GPUs NVIDIA apex (https://github.com/NVIDIA/apex) built with its "
    "CUDA extensions"
)

logger = logging.getLogger("lptn")


class AmpUnavailable(RuntimeError):
    """apex (or one of its parts) was asked for but is not installed; names what to install."""


@dataclass(frozen=True)
class AmpConfig:
    """``train.amp`` checked. ``precision``: ``fp32``, ``bf16`` or ``fp16``."""

    precision: str = "fp32"
    backend: str = "native"
    opt_level: str = "O1"
    loss_scale: Union[float, str] = "dynamic"
    combine_grad: Optional[bool] = None

    @property
    def uses_apex(self) -> bool:
        return self.backend == "apex" and self.precision != "fp32"


def amp_config(opt: Dict[str, Any]) -> AmpConfig:
    """Parse ``train.amp`` (see the module docstring), checked and defaulted by the schema
    (``option_schema.AMP``); errors name the key."""
    # Imported here: the schema imports this layer's tables.
    from lptn.platform.option_schema import AMP, fill_defaults

    amp = (opt.get("train") or {}).get("amp")
    if amp is False:
        amp = None
    block = fill_defaults(AMP, amp, "train.amp")
    if not block["enabled"]:
        return AmpConfig()
    backend = block["backend"]
    # The dtype's default depends on the backend (the schema documents it, not fills it).
    dtype = block["dtype"] if "dtype" in block else ("fp16" if backend == "apex" else "bf16")
    precision = AMP_DTYPES[dtype]
    if backend == "native":
        unused = fill_defaults(AMP, None, "train.amp")
        extra = [k for k in _APEX_ONLY_KEYS if block[k] != unused[k]]
        if extra:
            logger.warning(
                "train.amp: %s only apply to backend: apex; ignored with the native backend",
                ", ".join(extra),
            )
        return AmpConfig(precision=precision)
    if precision != "fp16":
        raise ValueError(
            "train.amp.dtype: apex AMP trains in fp16 only; use dtype: fp16 with "
            "backend: apex, or backend: native for bf16"
        )
    loss_scale = block["loss_scale"]
    return AmpConfig(
        precision="fp16",
        backend="apex",
        opt_level=block["opt_level"],
        loss_scale=loss_scale if loss_scale == "dynamic" else float(loss_scale),
        combine_grad=block["combine_grad"],
    )


# -------------------------------------------------------------------------------- apex
def import_apex(part: str, needed_for: str) -> ModuleType:
    """``apex.<part>`` (``amp`` or ``optimizers``) or :class:`AmpUnavailable` saying that
    ``needed_for`` needs it and how to install it."""
    try:
        return importlib.import_module(f"apex.{part}")
    except ImportError as err:
        raise AmpUnavailable(
            f"{needed_for} needs apex.{part}, which cannot be imported ({err}); {APEX_INSTALL_HINT}"
        ) from err


def apex_optimizer_class(name: str, key_path: str) -> type:
    """The class ``apex.optimizers.<name>``; errors name ``key_path`` and what to install."""
    module = import_apex("optimizers", f"{key_path}: {name}")
    cls = getattr(module, name, None)
    if cls is None:
        npu = name.startswith("Npu")
        raise AmpUnavailable(
            f"{key_path}: the installed apex has no optimizers.{name}"
            + (
                "; the NpuFused* optimisers come with the Ascend build of apex "
                "(https://gitee.com/ascend/apex)"
                if npu
                else ""
            )
        )
    return cls


def fused_optimizer_factory(name: str) -> Callable[..., Optimizer]:
    """A registry entry that builds ``apex.optimizers.<name>(params, **kwargs)`` on demand (so
    the registry lists the fused types without importing apex)."""

    def build(params: Any, **kwargs: Any) -> Optimizer:
        return apex_optimizer_class(name, "train.optim")(params, **kwargs)

    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = f"apex.optimizers.{name} (needs apex)"
    return build


def _fused_with_apex_error(key_path: str) -> ValueError:
    return ValueError(
        f"{key_path}: torch's fused optimiser step does not combine with "
        f"train.amp.backend: apex; remove 'fused' (or use type: FusedAdam from "
        f"apex.optimizers), or use backend: native"
    )


def check_training_requirements(opt: Dict[str, Any]) -> AmpConfig:
    """Import what the training options need from apex now, so that a missing package is
    reported before any data is read. Returns the parsed ``train.amp``."""
    config = amp_config(opt)
    train = opt.get("train") or {}
    if config.uses_apex:
        for key in ("optim_g", "optim_d"):
            block = train.get(key)
            if isinstance(block, dict) and block.get("fused"):
                raise _fused_with_apex_error(f"train.{key}.fused")
        import_apex("amp", "train.amp.backend: apex")
    for key in ("optim_g", "optim_d"):
        block = train.get(key)
        if isinstance(block, dict) and block.get("type") in FUSED_OPTIMIZERS:
            apex_optimizer_class(block["type"], f"train.{key}.type")
    return config


# ----------------------------------------------------------------------------- scalers
class NativeScaler(torch.amp.GradScaler):
    """A ``torch.amp.GradScaler`` (active for fp16, a pass-through otherwise) with the calls
    the training step makes, shared with :class:`ApexScaler`."""

    def backward(self, loss: torch.Tensor) -> None:
        self.scale(loss).backward()

    def gp_scale(self, device: torch.device) -> Union[float, torch.Tensor]:
        """The factor the gradient penalty's inner gradient is taken on (1.0 unless fp16)."""
        if not self.is_enabled():
            return 1.0
        return self.scale(torch.ones((), device=device))

    def step_optimizer(self, optimizer: Optimizer) -> bool:
        """Step (unscaling first); True when the step was skipped for an fp16 overflow."""
        if not self.is_enabled():
            optimizer.step()
            return False
        before = self.get_scale()
        self.step(optimizer)
        self.update()
        return self.get_scale() < before

    def back_off(self) -> None:
        """Lower the scale as for an overflow (the penalty overflowed, nothing was stepped)."""
        if self.is_enabled():
            self.update(self.get_scale() * self.get_backoff_factor())


class ApexScaler:
    """One loss of ``apex.amp`` (``loss_id``), behind the same calls as :class:`NativeScaler`."""

    def __init__(self, amp: ModuleType, loss_id: int, optimizer: Optimizer) -> None:
        self.amp = amp
        self.loss_id = loss_id
        self.optimizer = optimizer
        self._overflowed = False

    def is_enabled(self) -> bool:
        return True

    def _loss_scale(self) -> Optional[float]:
        # apex keeps its scalers in a private table; only used to report overflows and to
        # scale the penalty's inner gradient, with a safe fallback when it is not there.
        state = getattr(self.amp, "_amp_state", None)
        scalers = getattr(state, "loss_scalers", None)
        if not scalers or self.loss_id >= len(scalers):
            return None
        return float(scalers[self.loss_id].loss_scale())

    def backward(self, loss: torch.Tensor) -> None:
        before = self._loss_scale()
        with self.amp.scale_loss(loss, self.optimizer, loss_id=self.loss_id) as scaled:
            scaled.backward()
        after = self._loss_scale()
        self._overflowed = before is not None and after is not None and after < before

    def gp_scale(self, device: torch.device) -> float:
        return self._loss_scale() or 1.0

    def step_optimizer(self, optimizer: Optimizer) -> bool:
        # apex has already lowered the scale and patched this step into a no-op on overflow.
        optimizer.step()
        return self._overflowed

    def back_off(self) -> None:
        """apex lowers its scale itself when the scaled gradients overflow."""

    def state_dict(self) -> Dict[str, Any]:
        # apex has one table for all losses; each network stores all of it (loaded twice on
        # resume, which is idempotent).
        return {"apex_amp": self.amp.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.amp.load_state_dict(state["apex_amp"])


Scaler = Union[NativeScaler, ApexScaler]


def prepare_mixed_precision(
    config: AmpConfig,
    device: torch.device,
    nets: Dict[str, nn.Module],
    optimizers: Dict[str, Optimizer],
) -> Tuple[Dict[str, nn.Module], Dict[str, Optimizer], Dict[str, Scaler]]:
    """Networks, optimisers and one loss scaler per network, ready to train.

    Native: the same networks and optimisers, a :class:`NativeScaler` each. apex:
    ``amp.initialize`` over all of them at once (one loss id per network), which may cast the
    networks (O2) and patch the optimisers; call it before wrapping in DDP.
    """
    names = list(nets)
    if not config.uses_apex:
        return (
            nets,
            optimizers,
            {n: NativeScaler(device.type, enabled=config.precision == "fp16") for n in names},
        )
    for name in names:
        optimizer = optimizers[name]
        # torch's own optimisers only: apex's fused classes are what apex expects.
        if type(optimizer).__module__.startswith("torch.optim") and optimizer.defaults.get("fused"):
            # Names follow the model's 'net_g' / 'net_d' -> 'train.optim_g' / 'optim_d'.
            raise _fused_with_apex_error(f"train.optim_{name.rsplit('_', 1)[-1]}.fused")
    if device.type not in ("cuda", "npu"):
        raise AmpUnavailable(
            f"train.amp.backend: apex runs on CUDA GPUs or Ascend NPUs, not on "
            f"{device.type}; use backend: native there"
        )
    amp = import_apex("amp", "train.amp.backend: apex")
    kwargs: Dict[str, Any] = {
        "opt_level": config.opt_level,
        "loss_scale": config.loss_scale,
        "num_losses": len(names),
        "verbosity": 0,
    }
    if config.combine_grad is not None:
        kwargs["combine_grad"] = config.combine_grad
    try:
        models, opts = amp.initialize(
            [nets[n] for n in names], [optimizers[n] for n in names], **kwargs
        )
    except TypeError as err:
        if "combine_grad" in str(err):
            raise AmpUnavailable(
                "train.amp.combine_grad: the installed apex does not accept "
                "it; only the Ascend build of apex has combine_grad "
                "(https://gitee.com/ascend/apex). Remove the key for NVIDIA "
                "apex"
            ) from err
        raise
    if not isinstance(models, (list, tuple)):
        models, opts = [models], [opts]
    scalers: Dict[str, Scaler] = {n: ApexScaler(amp, i, opts[i]) for i, n in enumerate(names)}
    logger.info(
        "apex AMP %s, loss scale %s%s",
        config.opt_level,
        config.loss_scale,
        ", combine_grad" if config.combine_grad else "",
    )
    return dict(zip(names, models)), dict(zip(names, opts)), scalers


__all__ = [
    "AMP_BACKENDS",
    "AMP_DTYPES",
    "APEX_INSTALL_HINT",
    "APEX_OPT_LEVELS",
    "AmpConfig",
    "AmpUnavailable",
    "ApexScaler",
    "FUSED_OPTIMIZERS",
    "NativeScaler",
    "Scaler",
    "amp_config",
    "apex_optimizer_class",
    "fused_optimizer_factory",
    "check_training_requirements",
    "import_apex",
    "prepare_mixed_precision",
]
