"""YAML option files in the LPTN/BasicSR schema: load, override, validate, fill defaults.

The result is one plain ``dict``; nothing below the engine reads files or the command line.
Relative paths in an option file are taken relative to the current working directory, as in
the original code (run the scripts from the repository root).
"""

from __future__ import annotations

import copy
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml

from lptn.platform import option_schema


class OptionError(ValueError):
    """A bad option: the message names the key path and the file."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as users expect."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml_scalar(text: str) -> Any:
    """Type a command-line value by YAML scalar rules: ``1e-4`` float, ``false`` bool, ``~``."""
    return yaml.load(text, Loader=_Loader)


def load_yaml(path: str | Path) -> Dict[str, Any]:
    """The mapping a YAML option file holds; :class:`OptionError` names the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise OptionError(f"{path}: cannot read option file ({err.strerror or err})") from err
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise OptionError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise OptionError(f"{path}: the option file must hold a mapping at the top level")
    return data


def apply_overrides(opt: Dict[str, Any], overrides: Iterable[str], source: str) -> None:
    """Apply ``key.path=value`` strings in place; values are typed by YAML scalar rules."""
    for item in overrides:
        if "=" not in item:
            raise OptionError(f"--set {item!r}: expected key.path=value ({source})")
        key_path, text = item.split("=", 1)
        keys = key_path.strip().split(".")
        node = opt
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise OptionError(
                    f"--set {key_path}: {'.'.join(keys[: depth + 1])} is a "
                    f"{type(child).__name__}, not a mapping ({source})"
                )
            node = child
        try:
            node[keys[-1]] = parse_yaml_scalar(text)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "not a YAML value"
            raise OptionError(
                f"{source}: --set {key_path.strip()}: {text!r} is not a valid YAML value "
                f"({problem}); quote a value that starts with YAML punctuation"
            ) from None


DEVICES = option_schema.DEVICES


def validate(opt: Dict[str, Any], source: str, *, is_train: bool) -> Dict[str, Any]:
    """Check ``opt`` against the declared schema (:mod:`lptn.platform.option_schema`) and
    return the normalised copy (integers written ``5e3`` become ints) with the schema's
    defaults filled in. Raises
    :class:`OptionError` naming ``source`` and the key path; logs a warning for each key that
    is ignored or set by the runner."""
    try:
        result = option_schema.check_option_tree(opt, is_train=is_train)
    except option_schema.SchemaViolation as err:
        raise OptionError(f"{source}: {err}") from None
    log = logging.getLogger("lptn")
    for warning in result.warnings:
        log.warning("%s: %s", source, warning)
    return result.options


def _fill_runner_keys(opt: Dict[str, Any], *, is_train: bool, root: Path) -> None:
    # The schema filled every plain default (validate); what is left here is computed from the
    # file: the phase and name of each dataset, and the output folders.
    opt["is_train"] = is_train
    path = opt["path"]
    for ds_key, ds in (opt.get("datasets") or {}).items():
        ds["phase"] = ds_key.split("_")[0].rstrip("0123456789") or ds_key
        ds.setdefault("name", ds_key)
    name = opt["name"]
    if is_train:
        # Every training output follows experiments_root when it is given (as results_root
        # for tests); path.models, .log... still override theirs.
        explicit_root = path.get("experiments_root")
        exp = Path(explicit_root) if explicit_root else root / "experiments" / name
        path["experiments_root"] = str(exp)
        if explicit_root and not path.get("tb_logger"):
            path["tb_logger"] = str(exp / "tb_logger")
        path.setdefault("models", str(exp / "models"))
        path.setdefault("training_states", str(exp / "training_states"))
        path.setdefault("log", str(exp))
        path.setdefault("visualization", str(exp / "visualization"))
    else:
        # Logs and images follow results_root when only it is given.
        res = Path(path.get("results_root") or root / "results" / name)
        path["results_root"] = str(res)
        path.setdefault("log", str(res))
        path.setdefault("visualization", str(res / "visualization"))


def parse_options(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    is_train: bool,
    root: Optional[str | Path] = None,
) -> Dict[str, Any]:
    """Load ``path``, apply ``--set`` overrides, validate against the schema and fill defaults.

    The runners check the registry-resolved blocks (``network_g``...) afterwards with
    :func:`lptn.engine.option_check.load_options`, which calls this first.

    Args:
        path: the YAML option file.
        overrides: ``key.path=value`` strings.
        is_train: training options need ``datasets.train`` and ``train``.
        root: folder under which ``experiments/`` and ``results/`` go (default: cwd).
    """
    source = str(path)
    opt = load_yaml(path)
    apply_overrides(opt, overrides, source)
    opt = copy.deepcopy(validate(opt, source, is_train=is_train))
    _fill_runner_keys(opt, is_train=is_train, root=Path(root) if root else Path(os.getcwd()))
    opt["opt_path"] = source
    return opt


def dump_options(opt: Dict[str, Any]) -> str:
    """YAML text of ``opt`` (for the copy saved beside an experiment)."""
    return yaml.safe_dump(opt, sort_keys=False, default_flow_style=None)


def dataset_keys(opt: Dict[str, Any], phase: str) -> List[str]:
    """Keys of ``datasets`` whose phase is ``phase`` ('train', 'val' or 'test'), in file order."""
    return [k for k, ds in (opt.get("datasets") or {}).items() if ds.get("phase") == phase]
