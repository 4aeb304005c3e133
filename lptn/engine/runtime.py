"""The one place that decides device, precision and distribution.

Everything else receives a :class:`Runtime` and asks it (``runtime.device``,
``runtime.autocast()``, ``runtime.synchronize()``), so no module sprinkles device checks.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import random
import threading
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, Optional

import numpy as np
import torch

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class DeviceError(RuntimeError):
    """The requested device or precision is not available; says what to install or change."""


def _npu_available() -> bool:
    try:
        importlib.import_module("torch_npu")
    except ImportError:
        return False
    return bool(getattr(torch, "npu", None)) and torch.npu.is_available()


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def select_device(requested: str = "auto", num_gpu: Any = "auto", local_rank: int = 0) -> torch.device:
    """Resolve ``device`` / ``num_gpu`` options to a :class:`torch.device`.

    An explicit ``requested`` other than ``auto`` wins; otherwise ``num_gpu: 0`` means CPU and
    anything else takes the first available of CUDA, NPU, MPS, CPU. ``local_rank`` picks the
    accelerator index of this process.
    """
    if requested == "auto":
        if num_gpu == 0:
            return torch.device("cpu")
        if torch.cuda.is_available():
            requested = "cuda"
        elif _npu_available():
            requested = "npu"
        elif _mps_available():
            requested = "mps"
        else:
            requested = "cpu"
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device: cuda was requested but no CUDA device is available "
                              "(install a CUDA build of PyTorch, or set device: cpu)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if requested == "npu":
        try:
            importlib.import_module("torch_npu")
        except ImportError as err:
            raise DeviceError("device: npu needs the torch_npu package (Ascend CANN toolkit + "
                              "torch_npu matching your PyTorch); it is not installed") from err
        if not torch.npu.is_available():
            raise DeviceError("device: npu was requested but torch_npu sees no NPU")
        return torch.device("npu", local_rank % torch.npu.device_count())
    if requested == "mps":
        if not _mps_available():
            raise DeviceError("device: mps was requested but MPS is not available")
        return torch.device("mps")
    raise DeviceError(f"device: unknown device {requested!r}; use auto, cuda, npu, mps or cpu")


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise DeviceError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        # CPU autocast supports fp16 in recent PyTorch, but many CPU kernels are slow or missing.
        return
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("precision: bf16 is not supported by this CUDA device; use fp16")


class _PeakRSS:
    """Peak resident memory of this process, resettable through /proc/self/clear_refs.

    Falls back to a sampling thread where the kernel interface is missing.
    """

    def __init__(self) -> None:
        self._baseline_mb = 0.0
        self._sampler: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._sampled_peak = 0.0

    @staticmethod
    def _status_mb(field_name: str) -> Optional[float]:
        try:
            with open("/proc/self/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith(field_name + ":"):
                        return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    def reset(self) -> None:
        self._baseline_mb = self._status_mb("VmRSS") or 0.0
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
                self._sampled_peak = max(self._sampled_peak, self._status_mb("VmRSS") or 0.0)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def peak_growth_mb(self) -> float:
        if self._sampler is not None:
            return max(0.0, self._sampled_peak - self._baseline_mb)
        peak = self._status_mb("VmHWM") or 0.0
        return max(0.0, peak - self._baseline_mb)

    def peak_mb(self) -> float:
        return self._status_mb("VmHWM") or 0.0


@dataclass
class Runtime:
    """Device, precision and process-group facts, decided once and passed down."""

    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    _rss: _PeakRSS = field(default_factory=_PeakRSS, repr=False)

    @property
    def amp_dtype(self) -> Optional[torch.dtype]:
        return PRECISIONS[self.precision]

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def autocast(self, enabled: bool = True) -> ContextManager[Any]:
        """``torch.autocast`` for this device and precision; a no-op for fp32."""
        if self.amp_dtype is None or not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> "torch.amp.GradScaler":
        """A loss scaler for this precision: active for fp16, a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def synchronize(self) -> None:
        """Wait for queued device work (for timing)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "npu":
            torch.npu.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.device.type == "npu":
            torch.npu.reset_peak_memory_stats(self.device)
        else:
            self._rss.reset()

    def peak_memory_mb(self) -> float:
        """Allocator peak on GPU/NPU; peak RSS growth since the last reset on the CPU."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.device.type == "npu":
            return torch.npu.max_memory_allocated(self.device) / 2**20
        return self._rss.peak_growth_mb()

    def process_peak_rss_mb(self) -> float:
        """Whole-process peak RSS since the last reset (CPU memory, any device)."""
        return self._rss.peak_mb()

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        if self.device.type == "npu":
            return torch.npu.get_device_name(self.device)
        if self.device.type == "cpu":
            return _cpu_name()
        return self.device.type

    def describe(self) -> Dict[str, Any]:
        return {"device": str(self.device), "device_name": self.device_name(),
                "precision": self.precision, "rank": self.rank, "world_size": self.world_size,
                "torch": torch.__version__, "threads": torch.get_num_threads()}


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


def build_runtime(opt: Dict[str, Any], precision: Optional[str] = None, *, rank: int = 0,
                  local_rank: int = 0, world_size: int = 1) -> Runtime:
    """Decide the runtime from options (``device``, ``num_gpu``) and an optional precision."""
    device = select_device(opt.get("device", "auto"), opt.get("num_gpu", "auto"), local_rank)
    precision = precision or "fp32"
    check_precision(precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return Runtime(device=device, precision=precision, rank=rank, local_rank=local_rank,
                   world_size=world_size)


def set_random_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
