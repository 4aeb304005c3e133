"""``torch.compile`` choices shared by training (``train.compile``) and inference
(``inference.compile``): the accepted modes, parsing the option, and whether compiling can run.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

#: ``torch.compile`` modes an option may name (``true`` means ``default``)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: modes whose graphs are replayed as CUDA graphs on CUDA devices (outputs are reused buffers)
CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")


class CompileUnavailable(RuntimeError):
    """Compiling was asked for but torch.compile cannot run here; the message says why."""


def compile_mode_option(value: Any, key_path: str) -> Optional[str]:
    """``false`` / None -> None (eager), ``true`` -> ``default``, a mode -> itself; anything
    else is a ValueError naming ``key_path``."""
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if isinstance(value, str) and value in COMPILE_MODES:
        return value
    raise ValueError(
        f"{key_path}: expected false, true or a mode ({', '.join(COMPILE_MODES)}), got {value!r}"
    )


def check_compile_support(mode: Optional[str], device: torch.device, key_path: str) -> None:
    """Raise :class:`CompileUnavailable`, naming ``key_path``, when ``mode`` is set and
    torch.compile cannot run on ``device`` (no dynamo for this Python; no Triton on CUDA)."""
    if mode is None:
        return
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise CompileUnavailable(
            f"{key_path}: torch.compile is not supported by this Python / "
            "PyTorch build; set it to false"
        )
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise CompileUnavailable(
                f"{key_path}: compiling for CUDA needs Triton (pip install "
                "triton, matching your PyTorch); set it to false"
            )
