"""docs/OPTIONS.md, written from the declared schema: ``python -m lptn.engine.option_docs >
docs/OPTIONS.md`` (tests/test_engine/test_option_docs.py fails when the file is stale). It
lives in the engine because it also lists the registered types and their arguments."""

from __future__ import annotations

import inspect
import sys
from typing import Any, Dict, List, Optional

from lptn.engine.option_check import FRAMEWORK_KEYS, annotation_kind, registries, signature_of
from lptn.platform.option_schema import (
    ARGUMENT_RANGES,
    NO_DEFAULT,
    OPTIONS,
    REGISTRY_BLOCKS,
    Key,
    Kind,
    OptionalSection,
    Section,
    SectionMap,
)

INTRODUCTION = """\
# Option files

Generated from `lptn/platform/option_schema.py` by `python -m lptn.engine.option_docs >
docs/OPTIONS.md`; do not edit by hand (a test compares the two).

`train.py`, `test.py` and `test_speed.py` read one YAML file (`-opt FILE`, with
`--set key.path=value` overrides typed as YAML). Before any data is read and before any
folder is created, the whole file is checked against the schema below; every problem is one
line naming the file and the key path, and the exit status is 2:

- an unknown key at any depth, with the closest valid name (`val.save_imgs: unknown key (did
  you mean save_img?)`);
- a wrong type or a value out of range (`num_gpu must be an integer >= 0 or 'auto', got -3`);
- in a block that names a registered `type` (networks, losses, metrics, optimisers,
  schedulers, datasets), a `type` that is not registered, an argument that the class or
  function does not accept (read from its signature; the arguments lptn passes itself, such
  as a metric's `img`/`img2` or an optimiser's parameters, are not options), a missing
  required argument, or a value that does not fit the argument's annotation or its declared
  range (`network_g.num_high must be an integer >= 1, got 0`);
- a `--set` value that is not valid YAML.

Keys of the original LPTN / BasicSR files that lptn does not implement are never dropped
silently: those whose absence does not change the results are accepted with a warning naming
them (*ignored* below), those that would change the results are refused with the reason
(*refused*), a BasicSR spelling of an lptn key is read as that key (*alias*: `use_hflip` is
`use_flip`), and the keys that the runner sets itself (`is_train`, `dist`,
`datasets.*.phase`...) are replaced with a warning (*runner*).

The parsed options stay one plain `dict`, as in BasicSR; whole numbers written as floats
(`!!float 5e3`) become `int` for integer keys. Blocks with their own settings objects
(`inference`: `InferenceSettings`, `train.amp`: `AmpConfig`, `train.channels_last` /
`train.compile`: `TrainSpeed`, `dist_params`) are also run through their parsers in this
check, so that their errors come before anything runs too.

Why plain dataclasses and no schema library: the schema has to (1) leave the YAML values as
YAML typed them (pydantic's lax mode turns `"1"` into `1` and `1` into `true`, its strict mode
refuses `5e3` for an integer), (2) report one line in the project's form with a did-you-mean
hint, (3) treat the arguments of registry-resolved blocks as open, to be checked against the
signature of whatever class is registered, and (4) write this page. A table of about 140
declared keys built from eight value kinds does all four in one small module without a
dependency; pydantic or msgspec would need a custom type or an error translation for most of
them.

Defaults are what lptn does when a key is absent. Types: *int* keys take whole numbers;
*number* keys take ints or floats; `~` is YAML's null.
"""


def _kind_text(kind: Any) -> str:
    if isinstance(kind, Section):
        return "mapping"
    if isinstance(kind, SectionMap):
        return "mapping of blocks"
    if isinstance(kind, OptionalSection):
        return _kind_text(kind.inner) + " or ~"
    return str(kind.describe())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default_text(key: Key) -> str:
    if key.required:
        return "required"
    if key.default is NO_DEFAULT:
        return ""
    value = key.default
    if value is None:
        return "~"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        # A block's default: its keys' own defaults are in its table (an empty one says nothing).
        items = ", ".join(f"{k}: {v}" for k, v in value.items())
        return f"`{{{items}}}`" if items else ""
    return f"`{value}`" if not isinstance(value, str) or " " not in value else value


def _registry_of(path: str) -> Optional[str]:
    for pattern, kind in REGISTRY_BLOCKS:
        parts, names = pattern.split("."), path.split(".")
        if len(parts) == len(names) and all(p in ("*", n) for p, n in zip(parts, names)):
            return kind
    return None


def _section(section: Section, path: str, lines: List[str], nested: List[Any]) -> None:
    title = f"`{path}`" if path else "Top level"
    lines.append(f"## {title}")
    lines.append("")
    if section.doc:
        lines.append(section.doc[0].upper() + section.doc[1:] + ".")
        lines.append("")
    registry = _registry_of(path)
    if registry is not None and section.registry is not None:
        lines.append(
            f"Other keys are the arguments of the registered {registry} named by `type`, "
            "checked against its signature."
        )
        lines.append("")
    lines.append("| key | type | default | meaning |")
    lines.append("| --- | --- | --- | --- |")
    for name, key in section.keys.items():
        meaning = key.doc
        if key.status != "used":
            meaning = f"*{key.status}*: {meaning}"
        lines.append(
            f"| `{name}` | {_cell(_kind_text(key.kind))} | {_cell(_default_text(key))} "
            f"| {_cell(meaning)} |"
        )
        inner = key.kind.inner if isinstance(key.kind, OptionalSection) else key.kind
        child = f"{path}.{name}" if path else name
        if isinstance(inner, Section):
            nested.append((inner, child))
        elif isinstance(inner, SectionMap):
            nested.append((inner, child))
    lines.append("")


_REGISTRY_TITLES = (
    ("arch", "Networks (`network_g`, `network_d`)"),
    ("loss", "Losses (`train.pixel_opt`, `train.gan_opt`, `train.gp_opt`)"),
    ("metric", "Metrics (`val.metrics.*`)"),
    ("optimizer", "Optimisers (`train.optim_g`, `train.optim_d`)"),
    ("scheduler", "Schedules (`train.scheduler`)"),
    ("dataset", "Datasets (`datasets.*`)"),
)


def _argument_text(param: inspect.Parameter, hints: dict, ranges: Dict[str, Kind]) -> str:
    kind = ranges.get(param.name)
    if kind is None and param.name in hints:
        kind = annotation_kind(hints[param.name])
    text = f"`{param.name}`"
    if kind is not None:
        text += f" ({kind.describe()})"
    if param.default is inspect.Parameter.empty:
        return text + ", required"
    return text + f" = `{param.default!r}`"


def _registered_types(lines: List[str]) -> None:
    """The registered types of each registry and the arguments their blocks take."""
    lines.append("## Registered types and their arguments")
    lines.append("")
    lines.append(
        "Read from the registries and the signatures (the checks use the same). Objects "
        "from other packages (torch's optimisers, apex's) are named only: their arguments "
        "depend on the installed version."
    )
    lines.append("")
    for kind, title in _REGISTRY_TITLES:
        registry, passed, leading = registries()[kind]
        lines.append(f"### {title}")
        lines.append("")
        lines.append("| type | arguments |")
        lines.append("| --- | --- |")
        for name in registry.names():
            obj = registry.get(name)
            if kind == "dataset":
                args = "the keys of `datasets.*` above"
            elif not getattr(obj, "__module__", "").startswith("lptn."):
                args = f"see `{obj.__module__}.{obj.__qualname__}`"
            elif getattr(obj, "__doc__", "") and "needs apex" in (obj.__doc__ or ""):
                args = "apex's own (any keyword arguments are passed on)"
            else:
                params, hints = signature_of(obj)
                skip = set(passed) | set(FRAMEWORK_KEYS.get(kind, ("type",)))
                shown = [
                    _argument_text(p, hints, ARGUMENT_RANGES.get(name, {}))
                    for p in params[leading:]
                    if p.name not in skip
                    and p.kind
                    in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
                ]
                args = "; ".join(shown) or "none"
            lines.append(f"| `{name}` | {_cell(args)} |")
        lines.append("")


def render() -> str:
    """The Markdown text of docs/OPTIONS.md."""
    lines = [INTRODUCTION]
    queue: List[Any] = [(OPTIONS, "")]
    while queue:
        item, path = queue.pop(0)
        nested: List[Any] = []
        if isinstance(item, SectionMap):
            lines.append(f"## `{path}`")
            lines.append("")
            lines.append(
                f"{item.doc or 'Named blocks'}: one block per {item.key_doc}, each as "
                f"`{path}.*` below."
            )
            lines.append("")
            queue.insert(0, (item.section, f"{path}.*"))
            continue
        _section(item, path, lines, nested)
        queue[0:0] = nested
    _registered_types(lines)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    """Print the option reference (Markdown) to stdout; returns the exit status, 0."""
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
