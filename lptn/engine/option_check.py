"""Checks of the options that need the registries and the settings parsers: the runners read
option files with :func:`load_options` (the schema's :func:`lptn.platform.options.parse_options`,
then these checks), before any data is read or any folder is touched.

- every registry-resolved block (``network_g``, ``train.optim_g``, ``val.metrics.psnr``...;
  :data:`lptn.platform.option_schema.REGISTRY_BLOCKS`) names a registered ``type``, and its
  other keys are arguments that the registered class or function accepts
  (:func:`inspect.signature`; the arguments the framework passes itself, such as a metric's
  ``img``/``img2`` or an optimiser's parameters, are not options). Values are checked against
  the argument's annotation where it is a plain type (``int``, ``float``, ``bool``, ``str``,
  ``Literal``, ``Optional``, sequences), and whole floats become ints for ``int`` arguments;
- the blocks parsed into settings objects (``inference`` -> ``InferenceSettings``,
  ``train.amp`` -> ``AmpConfig``, ``train.channels_last``/``compile`` -> ``TrainSpeed``,
  ``dist_params``) are parsed once here, so that their errors come first too.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import typing
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from lptn.platform.option_schema import (
    ARGUMENT_RANGES,
    GRADIENT_PENALTY,
    REGISTRY_BLOCKS,
    AnyOf,
    Boolean,
    Integer,
    Kind,
    ListOf,
    Null,
    Number,
    SchemaViolation,
    Text,
)
from lptn.platform.options import OptionError, parse_options
from lptn.registry import Registry


def registries() -> Dict[str, Tuple[Registry, Tuple[str, ...], int]]:
    """kind -> (registry, argument names the framework passes, leading positionals it fills)."""
    from lptn.archs import ARCH_REGISTRY
    from lptn.data import DATASET_REGISTRY
    from lptn.losses import LOSS_REGISTRY
    from lptn.metrics import METRIC_REGISTRY
    from lptn.models.lr_scheduler import SCHEDULER_REGISTRY
    from lptn.models.optimizers import OPTIMIZER_REGISTRY

    return {
        "arch": (ARCH_REGISTRY, (), 0),
        "loss": (LOSS_REGISTRY, (), 0),
        "metric": (METRIC_REGISTRY, ("img", "img2"), 0),
        "optimizer": (OPTIMIZER_REGISTRY, (), 1),  # the parameters
        "scheduler": (SCHEDULER_REGISTRY, (), 1),  # the optimiser
        "dataset": (DATASET_REGISTRY, (), 0),  # takes the block itself (keys: the schema)
    }


#: keys of a block that the framework reads and does not pass to the registered object
FRAMEWORK_KEYS = {"metric": ("type", "better"), "dataset": ()}
#: the type a block gets when it names none (the schema's; parsed options have it filled in)
_DEFAULT_TYPES = {"train.gp_opt": GRADIENT_PENALTY.keys["type"].default}


def _blocks(opt: Dict[str, Any], pattern: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``(key_path, block)`` for each mapping at ``pattern`` (``*`` matches any name)."""
    nodes: List[Tuple[str, Any]] = [("", opt)]
    for part in pattern.split("."):
        found: List[Tuple[str, Any]] = []
        for path, node in nodes:
            if not isinstance(node, dict):
                continue
            names = list(node) if part == "*" else [part] if part in node else []
            found.extend((f"{path}.{n}" if path else str(n), node[n]) for n in names)
        nodes = found
    for path, node in nodes:
        if isinstance(node, dict):
            yield path, node


def annotation_kind(annotation: Any) -> Optional[Kind]:
    """The schema kind of a plain annotation, or None when it cannot be checked here."""
    if annotation is bool:
        return Boolean()
    if annotation is int:
        return Integer()
    if annotation is float:
        return Number()
    if annotation is str:
        return Text()
    if annotation is type(None):
        return Null()
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if all(isinstance(a, str) for a in args):
            return Text(tuple(args))
        return None
    if origin is typing.Union:
        kinds = [annotation_kind(a) for a in args]
        if any(k is None for k in kinds):
            return None
        return AnyOf(tuple(k for k in kinds if k is not None))
    if origin in (list, tuple, collections.abc.Sequence):
        item = (
            annotation_kind(args[0])
            if len(args) == 1 or (len(args) == 2 and args[1] is ...)
            else None
        )
        # an item type that cannot be checked here still makes it a list
        return ListOf(item if item is not None else _AnyItem())
    return None


class _AnyItem(Kind):
    def describe(self) -> str:
        return "a value"

    def accepts(self, value: Any) -> bool:
        return True


def signature_of(obj: Any) -> Tuple[List[inspect.Parameter], Dict[str, Any]]:
    """The parameters of ``obj`` (a class: its ``__init__`` without ``self``) and the type
    hints that resolve (empty when they do not)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = list(inspect.signature(target).parameters.values())
    if inspect.isclass(obj) and params and params[0].name == "self":
        params = params[1:]
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # foreign annotations (torch's) may not resolve
        hints = {}
    return params, hints


def _nearest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (accepted: {', '.join(names) or 'none'})"


def check_block_arguments(
    block: Dict[str, Any],
    obj: Any,
    key_path: str,
    *,
    passed: Sequence[str] = (),
    leading: int = 0,
    framework_keys: Sequence[str] = ("type",),
    ranges: Optional[Dict[str, Kind]] = None,
) -> None:
    """Check the keys of ``block`` (other than ``framework_keys``) as keyword arguments of
    ``obj``: unknown names, missing required ones, values against ``ranges`` (the schema's
    :data:`~lptn.platform.option_schema.ARGUMENT_RANGES` of the type) or else plain
    annotations. The framework fills the first ``leading`` positional parameters and those
    named in ``passed``. Whole floats given to ``int`` arguments become ints (in place).

    Raises:
        SchemaViolation: naming ``key_path.argument``.
    """
    params, hints = signature_of(obj)
    params = params[leading:]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    by_name = {
        p.name: p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    accepted = [n for n in by_name if n not in passed]
    name = getattr(obj, "__name__", str(obj))
    for arg, value in list(block.items()):
        if arg in framework_keys:
            continue
        path = f"{key_path}.{arg}"
        if arg in passed:
            raise SchemaViolation(path, f": set by lptn when it calls {name}; remove the key")
        if arg not in by_name:
            if takes_any:
                continue
            raise SchemaViolation(path, f": unknown argument of {name}{_nearest(arg, accepted)}")
        kind = (ranges or {}).get(arg)
        if kind is None and arg in hints:
            kind = annotation_kind(hints[arg])
        if kind is not None:
            block[arg] = kind.check(value, path)
    for arg in accepted:
        param = by_name[arg]
        if param.default is inspect.Parameter.empty and arg not in block:
            raise SchemaViolation(f"{key_path}.{arg}", f": required by {name}")


def check_registered_blocks(opt: Dict[str, Any]) -> None:
    """Check ``model_type`` and every registry-resolved block of ``opt`` (see the module
    docstring). Raises :class:`SchemaViolation` or KeyError-free :class:`ValueError`s naming
    the key path."""
    from lptn.models import MODEL_REGISTRY

    tables = registries()
    model_type = opt.get("model_type")
    if model_type is not None and model_type not in MODEL_REGISTRY:
        raise ValueError(MODEL_REGISTRY.unknown_message(model_type, "model_type"))
    for pattern, kind in REGISTRY_BLOCKS:
        registry, passed, leading = tables[kind]
        for key_path, block in _blocks(opt, pattern):
            type_name = block.get("type", _DEFAULT_TYPES.get(key_path))
            if not isinstance(type_name, str) or type_name not in registry:
                raise ValueError(registry.unknown_message(type_name, f"{key_path}.type"))
            if kind == "dataset":
                continue
            check_block_arguments(
                block,
                registry.get(type_name),
                key_path,
                passed=passed,
                leading=leading,
                framework_keys=FRAMEWORK_KEYS.get(kind, ("type",)),
                ranges=ARGUMENT_RANGES.get(type_name),
            )


def check_settings_blocks(opt: Dict[str, Any]) -> None:
    """Parse the blocks that have settings objects once, so that their errors come before
    anything runs (the runners parse them again where they use them)."""
    from lptn.inference.settings import InferenceSettings
    from lptn.platform.amp_backend import amp_config
    from lptn.platform.distributed import dist_settings
    from lptn.platform.train_speed import train_speed_options

    InferenceSettings.from_options(opt.get("inference"))
    dist_settings(opt)
    if opt.get("train") is not None:
        amp_config(opt)
        train_speed_options(opt)


def check_engine_options(opt: Dict[str, Any], source: str) -> None:
    """The two checks above, every failure an :class:`OptionError` naming ``source`` and the
    key path."""
    try:
        check_registered_blocks(opt)
        check_settings_blocks(opt)
    except (SchemaViolation, ValueError) as err:
        if isinstance(err, OptionError) and str(err).startswith(source):
            raise
        raise OptionError(f"{source}: {err}") from None


def load_options(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    is_train: bool,
    root: Optional[str | Path] = None,
) -> Dict[str, Any]:
    """The runners' option file: :func:`~lptn.platform.options.parse_options` (schema,
    overrides, defaults; same arguments), then :func:`check_engine_options`.

    Raises:
        OptionError: naming the file and the key path.
    """
    opt = parse_options(path, overrides, is_train=is_train, root=root)
    check_engine_options(opt, str(path))
    return opt


__all__ = [
    "load_options",
    "FRAMEWORK_KEYS",
    "annotation_kind",
    "registries",
    "signature_of",
    "check_block_arguments",
    "check_engine_options",
    "check_registered_blocks",
    "check_settings_blocks",
]
