"""Accelerator specifics behind :mod:`lptn.platform.runtime`: the only module that imports
``torch_npu`` or names a vendor's device module.

Everything here answers a question about one ``torch.device`` type (``cuda``, ``npu``, ``mps``,
``cpu``): is it available, how many devices, which process-group backend suits it, how to make
it this process's current device, which module holds its streams and memory counters. Callers
(the runtime, the distributed layer, the prefetcher) stay free of ``if npu:`` branches.

Ascend NPUs: ``torch_npu`` (Huawei's PyTorch adapter, installed with the CANN toolkit) registers
the ``npu`` device type and the ``torch.npu`` module when imported; it is imported once, here,
the first time an NPU is asked about.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Optional

import torch

#: process-group backend per device type (``dist_params.backend`` overrides it)
DEFAULT_DIST_BACKENDS = {"cuda": "nccl", "npu": "hccl", "cpu": "gloo", "mps": "gloo"}

NPU_INSTALL_HINT = (
    "install the Ascend CANN toolkit and the torch_npu package that matches "
    "your PyTorch version (https://gitee.com/ascend/pytorch), then "
    "`source /usr/local/Ascend/ascend-toolkit/set_env.sh`"
)

_npu_import_error: Optional[BaseException] = None
_npu_imported = False


class DeviceUnavailable(RuntimeError):
    """A device type whose software is not installed or that has no device here."""


def import_npu_support() -> bool:
    """Import ``torch_npu`` once; True when it imported (the ``npu`` device type exists)."""
    global _npu_imported, _npu_import_error
    if _npu_imported:
        return True
    if _npu_import_error is not None:
        return False
    try:
        importlib.import_module("torch_npu")
    except Exception as err:  # ImportError, or a broken CANN set-up raising at import
        _npu_import_error = err
        return False
    _npu_imported = True
    return True


def require_npu_support() -> None:
    """Raise :class:`DeviceUnavailable` naming what to install when ``torch_npu`` is missing."""
    if not import_npu_support():
        raise DeviceUnavailable(
            f"the NPU needs the torch_npu package, which could not be "
            f"imported ({_npu_import_error}); {NPU_INSTALL_HINT}"
        )


def device_module(device_type: str) -> Optional[ModuleType]:
    """``torch.cuda`` / ``torch.npu`` / ``torch.mps`` for a device type; None for the CPU or a
    type whose module does not exist (``torch.npu`` only exists once torch_npu is imported)."""
    if device_type == "cpu":
        return None
    if device_type == "npu" and not import_npu_support():
        return None
    return getattr(torch, device_type, None)


def is_available(device_type: str) -> bool:
    """Whether at least one device of this type can be used by this process."""
    if device_type == "cpu":
        return True
    if device_type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and bool(mps.is_available())
    module = device_module(device_type)
    return bool(module is not None and module.is_available())


def device_count(device_type: str) -> int:
    """How many devices of ``device_type`` this process sees (1 where the backend cannot count)."""
    module = device_module(device_type)
    if module is None or not hasattr(module, "device_count"):
        return 1
    return int(module.device_count())


def set_current_device(device: torch.device) -> None:
    """Make ``device`` the current device of this process (NCCL/HCCL and the stream and
    memory calls without an explicit device use it)."""
    module = device_module(device.type)
    if module is not None and hasattr(module, "set_device") and device.index is not None:
        module.set_device(device)


def default_dist_backend(device_type: str) -> str:
    """``nccl`` for CUDA, ``hccl`` for Ascend NPUs, ``gloo`` otherwise."""
    return DEFAULT_DIST_BACKENDS.get(device_type, "gloo")


def supports_streams(device: torch.device) -> bool:
    """Whether the device has side streams (copies can overlap compute)."""
    module = device_module(device.type)
    return module is not None and hasattr(module, "Stream") and hasattr(module, "stream")


def new_stream(device: torch.device) -> Any:
    """A new side stream on ``device`` (CUDA or NPU)."""
    return device_module(device.type).Stream(device=device)  # type: ignore[union-attr]


def stream_context(stream: Any, device: torch.device) -> Any:
    """``torch.<device>.stream(stream)``: work queued inside runs on ``stream``."""
    return device_module(device.type).stream(stream)  # type: ignore[union-attr]


def current_stream(device: torch.device) -> Any:
    """The stream that ``device``'s work is queued on now."""
    return device_module(device.type).current_stream(device)  # type: ignore[union-attr]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (no-op on the CPU)."""
    if device.type == "mps":
        torch.mps.synchronize()
        return
    module = device_module(device.type)
    if module is not None:
        module.synchronize(device)


def reset_peak_memory(device: torch.device) -> bool:
    """Reset the allocator's peak counter; False when the device has none (CPU, MPS)."""
    module = device_module(device.type)
    if device.type in ("cpu", "mps") or module is None:
        return False
    module.reset_peak_memory_stats(device)
    return True


def peak_memory_mb(device: torch.device) -> Optional[float]:
    """Allocator peak since the last reset, in MiB; None when the device has no counter."""
    module = device_module(device.type)
    if device.type in ("cpu", "mps") or module is None:
        return None
    return module.max_memory_allocated(device) / 2**20


def device_name(device: torch.device) -> str:
    """The device's marketing name (e.g. the GPU model), or its type where the backend has none."""
    module = device_module(device.type)
    if module is not None and hasattr(module, "get_device_name"):
        return str(module.get_device_name(device))
    return device.type


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 (True where the backend does not say)."""
    module = device_module(device.type)
    check = getattr(module, "is_bf16_supported", None)
    return True if check is None else bool(check())


__all__ = [
    "DEFAULT_DIST_BACKENDS",
    "DeviceUnavailable",
    "NPU_INSTALL_HINT",
    "bf16_supported",
    "current_stream",
    "default_dist_backend",
    "device_count",
    "device_module",
    "device_name",
    "import_npu_support",
    "is_available",
    "new_stream",
    "peak_memory_mb",
    "require_npu_support",
    "reset_peak_memory",
    "set_current_device",
    "stream_context",
    "supports_streams",
    "synchronize",
]
