"""The one place that decides device, precision and distribution.

Everything else receives a :class:`Runtime` and asks it (``runtime.device``,
``runtime.autocast()``, ``runtime.synchronize()``, ``runtime.distribute(net)``,
``runtime.mean_over_ranks(t)``), so no module sprinkles device checks. Three sibling modules
hold the details: :mod:`lptn.platform.device_backend` (per device type: CUDA, Ascend NPU, MPS),
:mod:`lptn.platform.amp_backend` (``train.amp``: torch autocast or apex, fused optimisers) and
:mod:`lptn.platform.distributed` (launchers, process group, collectives, DDP).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from lptn.platform import device_backend as backend
from lptn.platform import distributed
from lptn.platform.amp_backend import (
    AmpConfig,
    AmpUnavailable,
    NativeScaler,
    Scaler,
    check_training_requirements,
    prepare_mixed_precision,
)
from lptn.platform.train_speed import CompileUnavailable, check_compile_support, train_speed_options

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
#: The precision when none is asked for (the schema's ``val.precision`` default).
DEFAULT_PRECISION = "fp32"


class DeviceError(RuntimeError):
    """The requested device or precision is not available; says what to install or change."""


def select_device(requested: str, num_gpu: Any, local_rank: int = 0) -> torch.device:
    """Resolve ``device`` / ``num_gpu`` options to a :class:`torch.device`.

    An explicit ``requested`` other than ``auto`` wins; otherwise ``num_gpu: 0`` means CPU and
    anything else takes the first available of CUDA, NPU (when its PyTorch adapter imports), MPS,
    CPU. ``local_rank`` picks the accelerator index of this process.
    """
    if requested == "auto":
        if num_gpu == 0:
            return torch.device("cpu")
        requested = next((t for t in ("cuda", "npu", "mps") if backend.is_available(t)), "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not backend.is_available("cuda"):
            raise DeviceError(
                "device: cuda was requested but no CUDA device is available "
                "(install a CUDA build of PyTorch, or set device: cpu)"
            )
        return torch.device("cuda", local_rank % backend.device_count("cuda"))
    if requested == "npu":
        try:
            backend.require_npu_support()
        except backend.DeviceUnavailable as err:
            raise DeviceError(f"device: npu: {err}") from err
        if not backend.is_available("npu"):
            raise DeviceError(
                "device: npu was requested but the NPU adapter sees no device (check "
                "npu-smi info and ASCEND_RT_VISIBLE_DEVICES)"
            )
        return torch.device("npu", local_rank % backend.device_count("npu"))
    if requested == "mps":
        if not backend.is_available("mps"):
            raise DeviceError("device: mps was requested but MPS is not available")
        return torch.device("mps")
    raise DeviceError(f"device: unknown device {requested!r}; use auto, cuda, npu, mps or cpu")


def check_precision(precision: str, device: torch.device) -> None:
    """Raise DeviceError when ``precision`` is unknown or ``device`` cannot run it."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        # CPU autocast supports fp16 in recent PyTorch, but many CPU kernels are slow or missing.
        return
    if precision == "bf16" and device.type == "cuda" and not backend.bf16_supported(device):
        raise DeviceError("precision: bf16 is not supported by this CUDA device; use fp16")


#: the top-level keys that choose the device
_DEVICE_KEYS = ("device", "num_gpu", "tf32")


def device_options(opt: Dict[str, Any]) -> Dict[str, Any]:
    """``opt``'s ``device``, ``num_gpu`` and ``tf32``, checked and defaulted by the schema
    (``opt`` may be a plain dict such as ``{'device': 'cpu'}``); a :class:`DeviceError`
    names a bad value."""
    # Imported here: the schema imports this module's PRECISIONS.
    from lptn.platform import option_schema

    given = {key: opt[key] for key in _DEVICE_KEYS if key in opt}
    try:
        filled = option_schema.fill_defaults(option_schema.OPTIONS, given, "", required=False)
    except option_schema.SchemaViolation as err:
        raise DeviceError(str(err)) from None
    return {key: filled[key] for key in _DEVICE_KEYS}


def tf32_option(opt: Dict[str, Any]) -> bool:
    """The top-level ``tf32`` option (the schema's default); a :class:`DeviceError` names a
    bad value."""
    return bool(device_options(opt)["tf32"])


def configure_tf32(device: torch.device, allowed: bool) -> None:
    """Let CUDA convolutions and matmuls in float32 use TF32 tensor cores, or not.

    PyTorch lets cuDNN use TF32 for float32 convolutions by default on Ampere and newer GPUs
    (10-bit mantissa: errors around 1e-3), so "fp32" would not mean IEEE float32 there. Here
    float32 is float32 unless ``tf32: true`` asks for the faster mode. No effect elsewhere.
    """
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = allowed
        torch.backends.cuda.matmul.allow_tf32 = allowed


def process_memory_mb(field_name: str) -> Optional[float]:
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``...) in MB;
    None where the file or the field is missing (not Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


class _PeakRSS:
    """Peak resident memory of this process, resettable through /proc/self/clear_refs.

    Falls back to a sampling thread where the kernel interface is missing.
    """

    def __init__(self) -> None:
        self._baseline_mb = 0.0
        self._sampler: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._sampled_peak = 0.0

    def reset(self) -> None:
        self._baseline_mb = process_memory_mb("VmRSS") or 0.0
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            self._sampler = None
        except OSError:
            self._start_sampler()

    def _start_sampler(self) -> None:
        self._stop.set()
        self._stop = threading.Event()
        self._sampled_peak = self._baseline_mb
        stop = self._stop

        def sample() -> None:
            while not stop.wait(0.005):
                self._sampled_peak = max(self._sampled_peak, process_memory_mb("VmRSS") or 0.0)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def peak_growth_mb(self) -> float:
        if self._sampler is not None:
            return max(0.0, self._sampled_peak - self._baseline_mb)
        peak = process_memory_mb("VmHWM") or 0.0
        return max(0.0, peak - self._baseline_mb)


@dataclass
class Runtime:
    """Device, precision and process-group facts, decided once and passed down.

    ``amp`` holds the ``train.amp`` settings beyond the dtype (the apex backend); None means
    torch autocast with ``precision``. The collective helpers (:meth:`mean_over_ranks`,
    :meth:`all_gather`...) return their input when the run has one process.
    """

    device: torch.device
    precision: str = DEFAULT_PRECISION
    #: float32 convolutions / matmuls may use TF32 on CUDA (``tf32`` option)
    tf32: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    amp: Optional[AmpConfig] = None
    _rss: _PeakRSS = field(default_factory=_PeakRSS, repr=False)

    @property
    def amp_dtype(self) -> Optional[torch.dtype]:
        return PRECISIONS[self.precision]

    @property
    def amp_backend(self) -> str:
        """``native`` (torch autocast + GradScaler) or ``apex``."""
        return "apex" if self.amp is not None and self.amp.uses_apex else "native"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def autocast(self, enabled: bool = True) -> ContextManager[Any]:
        """``torch.autocast`` for this device and precision; a no-op for fp32 and for apex
        (which casts by itself)."""
        if self.amp_dtype is None or not enabled or self.amp_backend == "apex":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> NativeScaler:
        """A loss scaler for this precision: active for fp16, a pass-through otherwise."""
        return NativeScaler(self.device.type, enabled=self.precision == "fp16")

    def prepare_training(
        self, nets: Dict[str, nn.Module], optimizers: Dict[str, Optimizer]
    ) -> Tuple[Dict[str, nn.Module], Dict[str, Optimizer], Dict[str, Scaler]]:
        """Networks, optimisers and a loss scaler per network for this precision backend
        (apex initialises them together); call before :meth:`distribute`."""
        config = self.amp or AmpConfig(precision=self.precision)
        return prepare_mixed_precision(config, self.device, nets, optimizers)

    def distribute(self, net: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``net`` wrapped in DistributedDataParallel when there are several processes."""
        if not self.distributed:
            return net
        return distributed.wrap_ddp(net, self.device, find_unused_parameters)

    def mean_over_ranks(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise mean of a tensor on this device over all processes."""
        return distributed.mean_over_ranks(tensor) if self.distributed else tensor

    def max_over_ranks(self, value: float) -> float:
        """The largest ``value`` of all processes, on every process."""
        return distributed.max_over_ranks(value, self.device) if self.distributed else value

    def all_gather(self, obj: Any) -> List[Any]:
        """Every process's ``obj`` in rank order."""
        return distributed.all_gather_objects(obj) if self.distributed else [obj]

    def gather_to_main(self, obj: Any) -> Optional[List[Any]]:
        """Every process's ``obj`` in rank order on rank 0; None on the other ranks."""
        return distributed.gather_to_main(obj) if self.distributed else [obj]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        return distributed.broadcast_object(obj) if self.distributed else obj

    def barrier(self) -> None:
        if self.distributed:
            distributed.barrier()

    def synchronize(self) -> None:
        """Wait for queued device work (for timing)."""
        backend.synchronize(self.device)

    def reset_peak_memory(self) -> None:
        if not backend.reset_peak_memory(self.device):
            self._rss.reset()

    def peak_memory_mb(self) -> float:
        """Allocator peak on GPU/NPU; peak RSS growth since the last reset on the CPU."""
        peak = backend.peak_memory_mb(self.device)
        return self._rss.peak_growth_mb() if peak is None else peak

    def device_name(self) -> str:
        if self.device.type == "cpu":
            return _cpu_name()
        return backend.device_name(self.device)

    def describe(self) -> Dict[str, Any]:
        return {
            "device": str(self.device),
            "device_name": self.device_name(),
            "precision": self.precision,
            "amp_backend": self.amp_backend,
            "rank": self.rank,
            "world_size": self.world_size,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"CPU {line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    import platform

    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def build_runtime(
    opt: Dict[str, Any],
    precision: Optional[str] = None,
    *,
    rank: int = 0,
    local_rank: int = 0,
    world_size: int = 1,
) -> Runtime:
    """Decide the runtime from options (``device``, ``num_gpu``, ``tf32``) and an optional
    precision."""
    chosen = device_options(opt)
    tf32 = bool(chosen["tf32"])
    device = select_device(chosen["device"], chosen["num_gpu"], local_rank)
    precision = precision or DEFAULT_PRECISION
    check_precision(precision, device)
    configure_tf32(device, tf32)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return Runtime(
        device=device,
        precision=precision,
        tf32=tf32,
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
    )


def build_training_runtime(
    opt: Dict[str, Any], launch: Optional[distributed.LaunchEnv] = None
) -> Runtime:
    """The training runtime: ``train.amp`` (apex imported now when asked for), the device of
    this process's local rank and, under a launcher, the joined process group.

    Everything that can be missing (the NPU adapter, apex, a fused optimiser, torch.compile's
    needs, the launcher's variables) is checked here, before any data is read.
    """
    launch = launch or distributed.LaunchEnv("none")
    settings = distributed.dist_settings(opt)
    speed = train_speed_options(opt)  # bad train.channels_last / compile values: ValueError
    tf32 = tf32_option(opt)
    # Both checks run so that one message names everything missing (NPU adapter and apex).
    missing = []
    try:
        amp = check_training_requirements(opt)
    except AmpUnavailable as err:
        missing.append(str(err))
    try:
        chosen = device_options(opt)
        device = select_device(chosen["device"], chosen["num_gpu"], launch.local_rank)
    except DeviceError as err:
        missing.append(str(err))
    if missing:
        raise DeviceError("; and ".join(missing))
    check_precision(amp.precision, device)
    try:
        check_compile_support(speed, device)
    except CompileUnavailable as err:
        raise DeviceError(str(err)) from err
    if amp.uses_apex and device.type not in ("cuda", "npu"):
        raise DeviceError(
            f"train.amp.backend: apex runs on CUDA GPUs or Ascend NPUs, not on "
            f"{device.type}; use backend: native (torch autocast) there"
        )
    configure_tf32(device, tf32)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if launch.distributed:
        backend.set_current_device(device)
        dist_backend = settings["backend"] or backend.default_dist_backend(device.type)
        distributed.check_backend_fits(dist_backend, device)
        distributed.init_process_group(launch, dist_backend, settings["timeout_min"])
    return Runtime(
        device=device,
        precision=amp.precision,
        tf32=tf32,
        rank=launch.rank,
        local_rank=launch.local_rank,
        world_size=launch.world_size,
        amp=amp,
    )


def set_random_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
