"""The ``inference:`` option block and the choice between the fast and the exact path.

YAML (all keys optional)::

    inference:
      path: fast            # fast (default) | exact (the straightforward network) | graph
      compile: false        # graph path only: true / a torch.compile mode (reduce-overhead...)
      tile_size: ~          # square full-resolution tiles of this side; ~ = automatic
      memory_budget_mb: ~   # working-memory budget; ~ = 768 MB on the CPU, 4096 elsewhere
      channels_last: true   # conv stacks in channels_last
      conv_backend: auto    # auto | generic | onednn | openvino (CPU conv kernels)

The precision (fp32 / bf16 / fp16) comes from the runtime (``val.precision`` or
``--precision``); on the fast and graph paths it applies to the conv stacks only.

``fast`` (:class:`~lptn.inference.FastLPTN`) bounds memory and tiles large images; ``graph``
(:class:`~lptn.inference.GraphLPTN`) runs the whole image as plain tensor operators, the form
``torch.compile`` fuses best (the candidate for GPUs, see docs/PERFORMANCE.md).

Defaults, ranges and choices are the schema's (``option_schema.INFERENCE``); the YAML block
(:meth:`InferenceSettings.from_options`) and ``lptn-enhance``'s flags
(:meth:`InferenceSettings.from_flags`) go through the same checks, each error naming the key
as that interface spells it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional, Union

from torch import nn

from lptn.archs.lptn_arch import LPTN
from lptn.inference.context_tiling import ContextTiledPath, offers_context
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.graph_lptn import GraphLPTN
from lptn.inference.openvino_stack import MISSING_OPENVINO, openvino_available
from lptn.platform.compilation import CompileUnavailable, check_compile_support, compile_mode_option
from lptn.platform.logger import get_logger
from lptn.platform.option_schema import (
    INFERENCE,
    INFERENCE_PATHS,
    PHOTO,
    PRECISION_NAMES,
    SchemaViolation,
    check_block,
    check_key,
)
from lptn.platform.options import OptionError
from lptn.platform.runtime import DEFAULT_PRECISION

PATHS = INFERENCE_PATHS

#: The largest photo, in megapixels (width x height / 1e6, read from the file's header before
#: any pixel is decoded), that ``lptn-enhance`` and ``lptn-serve`` take by default (the schema's
#: ``PHOTO.max_megapixels``).
MAX_MEGAPIXELS: float = PHOTO.keys["max_megapixels"].default

#: How ``lptn-enhance`` spells the ``inference`` keys it takes (its flags), for its messages.
ENHANCE_FLAGS: Mapping[str, str] = {
    "path": "--path",
    "compile": "--compile",
    "tile_size": "--tile",
    "memory_budget_mb": "--memory-budget",
    "conv_backend": "--conv-backend",
}


class InferenceOptionError(OptionError):
    """A bad value in the ``inference`` block; the message names the key."""


def _default(name: str) -> Any:
    return INFERENCE.keys[name].default


@dataclass(frozen=True)
class InferenceSettings:
    """Validated ``inference`` options; see the module docstring. Defaults, ranges and choices
    are the schema's (``option_schema.INFERENCE``)."""

    path: str = _default("path")
    tile_size: Optional[int] = _default("tile_size")
    memory_budget_mb: Optional[float] = _default("memory_budget_mb")
    channels_last: bool = _default("channels_last")
    conv_backend: str = _default("conv_backend")
    compile: Union[bool, str] = _default("compile")

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
        try:
            checked = check_block(INFERENCE, block, key_path)
        except SchemaViolation as err:
            raise InferenceOptionError(str(err)) from None
        settings = cls(**checked)
        settings._check_combination(_Spelling(key_path))
        return settings

    @classmethod
    def from_flags(cls, **values: Any) -> InferenceSettings:
        """The settings from ``lptn-enhance``'s flags (keyword = key name; None = default),
        checked by the same rules as the YAML block; errors name the flag."""
        given = {name: value for name, value in values.items() if value is not None}
        settings = cls(**given)
        settings.validate(flags=ENHANCE_FLAGS)
        return settings

    def validate(
        self, key_path: str = "inference", flags: Optional[Mapping[str, str]] = None
    ) -> None:
        """Check every value against the schema, then the rules between keys; errors name
        ``key_path.key``, or the flag of ``flags`` that spells the key."""
        spell = _Spelling(key_path, flags)
        for item in fields(self):
            try:
                check_key(INFERENCE, item.name, getattr(self, item.name), spell.name(item.name))
            except SchemaViolation as err:
                raise InferenceOptionError(str(err)) from None
        self._check_combination(spell)

    def _check_combination(self, spell: _Spelling) -> None:
        if self.conv_backend == "openvino" and not openvino_available():
            raise InferenceOptionError(
                f"{spell.setting('conv_backend', 'openvino')} {MISSING_OPENVINO}"
            )
        if self.path == "graph":
            for key in ("tile_size", "memory_budget_mb", "conv_backend"):
                if getattr(self, key) != _default(key):
                    raise InferenceOptionError(
                        f"{spell.name(key)}: the graph path runs the whole image with PyTorch's "
                        f"own convolutions; {spell.name(key)} applies to "
                        f"{spell.setting('path', 'fast')} only"
                    )
        if self.compile is not False and self.path != "graph":
            raise InferenceOptionError(
                f"{spell.name('compile')}: only the graph path is compiled; "
                f"set {spell.setting('path', 'graph')} (got {self.path!r})"
            )


@dataclass(frozen=True)
class _Spelling:
    """How one interface names the ``inference`` keys: ``inference.tile_size`` in YAML,
    ``--tile`` on ``lptn-enhance``'s command line."""

    key_path: str = "inference"
    flags: Optional[Mapping[str, str]] = None

    def name(self, key: str) -> str:
        if self.flags is not None and key in self.flags:
            return self.flags[key]
        return f"{self.key_path}.{key}"

    def setting(self, key: str, value: str) -> str:
        name = self.name(key)
        return f"{name} {value}" if name.startswith("--") else f"{name}: {value}"


InferencePath = Union[FastLPTN, GraphLPTN, ContextTiledPath]


def build_inference_path(
    net: nn.Module, settings: InferenceSettings, precision: str = DEFAULT_PRECISION
) -> Optional[InferencePath]:
    """The :class:`FastLPTN` or :class:`GraphLPTN` for ``net`` (both apply ``precision`` to
    the conv stacks themselves); for another generator on the fast path, a
    :class:`~lptn.inference.context_tiling.ContextTiledPath` when it offers the context
    protocol; None when ``settings.path`` is ``exact`` or for any other generator (then the
    network itself is the only path, one INFO line says so)."""
    if settings.path == "exact":
        return None
    if not isinstance(net, LPTN):
        if settings.path == "fast" and offers_context(net):
            # Global context from a small copy, then a local apply: tiled the same way.
            return ContextTiledPath(net, settings.tile_size, settings.memory_budget_mb)
        # The fast and graph paths are LPTN's pyramid maths; any other generator runs exact.
        get_logger().info(
            "inference.path %s: %s is not an LPTN network; running it exact (inference.path: "
            "exact)",
            settings.path,
            type(net).__name__,
        )
        return None
    if precision not in PRECISION_NAMES:
        raise InferenceOptionError(
            f"precision: expected one of {', '.join(PRECISION_NAMES)}, got {precision!r}"
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
