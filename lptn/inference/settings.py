"""The ``inference:`` option block and the choice between the fast and the exact path.

YAML (all keys optional)::

    inference:
      path: fast            # fast (default) | exact (the straightforward network) | graph
      compile: false        # graph path only: true / a torch.compile mode (reduce-overhead...)
      tile_size: ~          # square full-resolution tiles of this side; ~ = automatic
      memory_budget_mb: ~   # working-memory budget; ~ = 768 MB on the CPU, 4096 elsewhere
      channels_last: true   # conv stacks in channels_last
      conv_backend: auto    # auto | generic | onednn (CPU fused convs)

The precision (fp32 / bf16 / fp16) comes from the runtime (``val.precision`` or
``--precision``); on the fast and graph paths it applies to the conv stacks only.

``fast`` (:class:`~lptn.inference.FastLPTN`) bounds memory and tiles large images; ``graph``
(:class:`~lptn.inference.GraphLPTN`) runs the whole image as plain tensor operators, the form
``torch.compile`` fuses best (the candidate for GPUs, see docs/PERFORMANCE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Union

from torch import nn

from lptn.archs.lptn_arch import LPTN
from lptn.inference.conv_stacks import BACKENDS
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.graph_lptn import GraphLPTN
from lptn.platform.compilation import CompileUnavailable, check_compile_support, compile_mode_option
from lptn.platform.logger import get_logger
from lptn.platform.option_schema import whole_number
from lptn.platform.options import OptionError
from lptn.platform.runtime import PRECISIONS

PATHS = ("fast", "exact", "graph")

#: The largest photo, in megapixels (width x height / 1e6, read from the file's header before
#: any pixel is decoded), that ``lptn-enhance`` and ``lptn-serve`` take by default: above the
#: 100-150 MP of medium-format cameras and the 240 MP of pixel-shift composites, below the
#: 400 MP of a 20000x20000 "decompression bomb" (a 1 MB PNG that would need gigabytes).
MAX_MEGAPIXELS = 250.0


class InferenceOptionError(OptionError):
    """A bad value in the ``inference`` block; the message names the key."""


@dataclass(frozen=True)
class InferenceSettings:
    """Validated ``inference`` options; see the module docstring."""

    path: str = "fast"
    tile_size: Optional[int] = None
    memory_budget_mb: Optional[float] = None
    channels_last: bool = True
    conv_backend: str = "auto"
    compile: Union[bool, str] = False

    @property
    def compile_mode(self) -> Optional[str]:
        """The ``torch.compile`` mode, or None when not compiling."""
        return compile_mode_option(self.compile, "inference.compile")

    @classmethod
    def from_options(
        cls, block: Optional[Dict[str, Any]], key_path: str = "inference"
    ) -> InferenceSettings:
        """Parse the YAML block (None = defaults); unknown keys and bad values are errors
        naming ``key_path.key``."""
        if block is None:
            return cls()
        if not isinstance(block, dict):
            raise InferenceOptionError(f"{key_path}: expected a mapping, got {block!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise InferenceOptionError(
                f"{key_path}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})"
            )
        settings = cls(**block)
        settings.validate(key_path)
        return settings

    def validate(self, key_path: str = "inference") -> None:
        if self.path not in PATHS:
            raise InferenceOptionError(
                f"{key_path}.path: expected one of {', '.join(PATHS)}, got {self.path!r}"
            )
        if self.tile_size is not None:
            try:
                whole_number(self.tile_size, f"{key_path}.tile_size", 16)
            except ValueError as err:
                raise InferenceOptionError(str(err)) from None
        if self.memory_budget_mb is not None and (
            isinstance(self.memory_budget_mb, bool)
            or not isinstance(self.memory_budget_mb, (int, float))
            or self.memory_budget_mb <= 0
        ):
            raise InferenceOptionError(
                f"{key_path}.memory_budget_mb: expected a positive "
                f"number or ~, got {self.memory_budget_mb!r}"
            )
        if not isinstance(self.channels_last, bool):
            raise InferenceOptionError(
                f"{key_path}.channels_last: expected true or false, got {self.channels_last!r}"
            )
        if self.conv_backend not in BACKENDS:
            raise InferenceOptionError(
                f"{key_path}.conv_backend: expected one of "
                f"{', '.join(BACKENDS)}, got {self.conv_backend!r}"
            )
        try:
            compile_mode_option(self.compile, f"{key_path}.compile")
        except ValueError as err:
            raise InferenceOptionError(str(err)) from err
        if self.path == "graph":
            for key, default in (
                ("tile_size", None),
                ("memory_budget_mb", None),
                ("conv_backend", "auto"),
            ):
                if getattr(self, key) != default:
                    raise InferenceOptionError(
                        f"{key_path}.{key}: the graph path runs the whole image with PyTorch's "
                        f"own convolutions; {key} applies to path: fast only"
                    )
        if self.compile is not False and self.path != "graph":
            raise InferenceOptionError(
                f"{key_path}.compile: only the graph path is compiled; "
                f"set {key_path}.path: graph (got {self.path!r})"
            )


InferencePath = Union[FastLPTN, GraphLPTN]


def build_inference_path(
    net: nn.Module, settings: InferenceSettings, precision: str = "fp32"
) -> Optional[InferencePath]:
    """The :class:`FastLPTN` or :class:`GraphLPTN` for ``net`` (both apply ``precision`` to
    the conv stacks themselves), or None when ``settings.path`` is ``exact`` or the network is
    not of the LPTN family (then the network itself is the only path)."""
    if settings.path == "exact":
        return None
    if not isinstance(net, LPTN):
        get_logger().warning(
            "inference.path %s: %s is not an LPTN network; using it as it is",
            settings.path,
            type(net).__name__,
        )
        return None
    if precision not in PRECISIONS:
        raise InferenceOptionError(
            f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    if settings.path == "graph":
        device = next(net.parameters()).device
        try:
            check_compile_support(settings.compile_mode, device, "inference.compile")
        except CompileUnavailable as err:
            raise InferenceOptionError(str(err)) from err
        return GraphLPTN(
            net,
            precision=precision,
            channels_last=settings.channels_last,
            compile_mode=settings.compile_mode,
        )
    return FastLPTN(
        net,
        precision=precision,
        channels_last=settings.channels_last,
        tile_size=settings.tile_size,
        memory_budget_mb=settings.memory_budget_mb,
        conv_backend=settings.conv_backend,
    )
