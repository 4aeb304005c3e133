"""YAML option files in the LPTN/BasicSR schema: load, override, validate, fill defaults.

The result is one plain ``dict``; nothing below the engine reads files or the command line.
Relative paths in an option file are taken relative to the current working directory, as in
the original code (run the scripts from the repository root).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml


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
        node[keys[-1]] = parse_yaml_scalar(text)


# Top-level keys of the schema. 'scale' and 'is_train' appear in BasicSR files and are ignored.
TOP_LEVEL_KEYS = {
    "name": "experiment name (str)",
    "model_type": "model class (str)",
    "num_gpu": "0 = CPU, or the number of devices",
    "manual_seed": "int or ~",
    "device": "auto | cuda | npu | mps | cpu",
    "datasets": "mapping of dataset blocks",
    "tf32": "float32 convs/matmuls may use TF32 on CUDA (default false)",
    "network_g": "generator arch block",
    "network_d": "discriminator arch block",
    "path": "paths",
    "train": "training settings",
    "val": "validation / speed settings",
    "logger": "logging settings",
    "dist_params": "distributed settings",
    "scale": "ignored (BasicSR)",
    "is_train": "set by the runner",
    "dist": "set by the runner",
    "rank": "set by the runner",
    "world_size": "set by the runner",
    "inference": "fast / graph / exact path settings for test/speed/enhance",
    "find_unused_parameters": "DDP setting",
    "opt_path": "set by the runner",
}

DEVICES = ("auto", "cuda", "npu", "mps", "cpu")

_NUMBER = (int, float)
# key path -> (allowed python types, description). Frequencies may be written as !!float 5e3.
_TYPES: Dict[str, Tuple[tuple, str]] = {
    "name": ((str,), "a string"),
    "model_type": ((str,), "a string"),
    "num_gpu": ((int, str), "an integer or 'auto'"),
    "manual_seed": ((int, type(None)), "an integer or ~"),
    "device": ((str,), "one of " + ", ".join(DEVICES)),
    "tf32": ((bool,), "true or false"),
    "datasets": ((dict,), "a mapping"),
    "network_g": ((dict,), "a mapping with a 'type'"),
    "network_d": ((dict, type(None)), "a mapping with a 'type'"),
    "path": ((dict,), "a mapping"),
    "train": ((dict,), "a mapping"),
    "val": ((dict, type(None)), "a mapping"),
    "logger": ((dict,), "a mapping"),
    "dist_params": ((dict,), "a mapping"),
    "path.pretrain_network_g": ((str, type(None)), "a file path or ~"),
    "path.pretrain_network_d": ((str, type(None)), "a file path or ~"),
    "path.strict_load_g": ((bool,), "true or false"),
    "path.resume_state": ((str, type(None)), "a file path or ~"),
    "path.param_key_g": ((str, type(None)), "a string such as params or params_ema"),
    "val.save_img": ((bool,), "true or false"),
    "val.val_freq": (_NUMBER, "a number"),
    "val.num_img": ((int,), "an integer"),
    "val.times_per_img": ((int,), "an integer"),
    "val.fix_img_size": ((list, type(None)), "[H, W], a list of [H, W] or ~"),
    "val.suffix": ((str, type(None)), "a string or ~"),
    "val.metrics": ((dict, type(None)), "a mapping of metric blocks"),
    "val.precision": ((str, list), "fp32, fp16 or bf16 (or a list of them)"),
    "val.save_comparison": ((bool,), "true or false"),
    "logger.print_freq": (_NUMBER, "a number"),
    "logger.save_checkpoint_freq": (_NUMBER, "a number"),
    "logger.use_tb_logger": ((bool,), "true or false"),
    "train.total_iter": (_NUMBER, "a number"),
    "train.warmup_iter": (_NUMBER, "a number"),
}

# Integer-valued options often written as floats (!!float 5e3).
_INTEGRAL = (
    "val.val_freq",
    "logger.print_freq",
    "logger.save_checkpoint_freq",
    "train.total_iter",
    "train.warmup_iter",
)


def _get(opt: Dict[str, Any], key_path: str) -> Tuple[bool, Any]:
    node: Any = opt
    for key in key_path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _set(opt: Dict[str, Any], key_path: str, value: Any) -> None:
    keys = key_path.split(".")
    node = opt
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value


def validate(opt: Dict[str, Any], source: str, *, is_train: bool) -> None:
    """Check keys and types; raise :class:`OptionError` naming the key path and ``source``."""
    for key in opt:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(key, TOP_LEVEL_KEYS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise OptionError(
                f"{source}: unknown top-level key {key!r}{hint}. Known keys: "
                f"{', '.join(sorted(TOP_LEVEL_KEYS))}"
            )
    required = ["name", "model_type", "network_g"]
    if is_train:
        required += ["datasets", "train"]
    for key in required:
        if opt.get(key) is None:
            raise OptionError(f"{source}: missing required key {key!r}")
    for key_path, (types, what) in _TYPES.items():
        present, value = _get(opt, key_path)
        if not present:
            continue
        # bool is an int subclass; do not let `true` pass as a number or vice versa.
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            raise OptionError(
                f"{source}: {key_path} must be {what}, got {value!r} ({type(value).__name__})"
            )
    for key_path in _INTEGRAL:
        present, value = _get(opt, key_path)
        if present and isinstance(value, float):
            if not value.is_integer():
                raise OptionError(f"{source}: {key_path} must be a whole number, got {value}")
            _set(opt, key_path, int(value))
    if opt.get("device", "auto") not in DEVICES:
        raise OptionError(
            f"{source}: device must be one of {', '.join(DEVICES)}, got {opt['device']!r}"
        )
    for name in ("network_g", "network_d"):
        block = opt.get(name)
        if isinstance(block, dict) and not isinstance(block.get("type"), str):
            raise OptionError(f"{source}: {name}.type is required (a string)")
    for ds_key, ds in (opt.get("datasets") or {}).items():
        if not isinstance(ds, dict):
            raise OptionError(f"{source}: datasets.{ds_key} must be a mapping")
        if not isinstance(ds.get("type"), str):
            raise OptionError(f"{source}: datasets.{ds_key}.type is required (a string)")
        if not (ds_key.startswith(("train", "val", "test"))):
            raise OptionError(
                f"{source}: datasets.{ds_key}: dataset keys must start with train, val or test"
            )
    for metric_key, metric in ((opt.get("val") or {}).get("metrics") or {}).items():
        if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
            raise OptionError(f"{source}: val.metrics.{metric_key}.type is required")
    if is_train and "train" not in (opt.get("datasets") or {}):
        raise OptionError(f"{source}: datasets.train is required for training")


def _fill_defaults(opt: Dict[str, Any], *, is_train: bool, root: Path) -> None:
    opt["is_train"] = is_train
    opt.setdefault("manual_seed", None)
    opt.setdefault("num_gpu", "auto")
    opt.setdefault("device", "auto")
    opt["path"] = path = dict(opt.get("path") or {})
    path.setdefault("pretrain_network_g", None)
    path.setdefault("strict_load_g", True)
    path.setdefault("resume_state", None)
    opt.setdefault("dist_params", {})
    opt.setdefault("logger", {})
    opt["val"] = dict(opt.get("val") or {})
    for ds_key, ds in (opt.get("datasets") or {}).items():
        ds["phase"] = ds_key.split("_")[0].rstrip("0123456789") or ds_key
        ds.setdefault("name", ds_key)
        ds.setdefault("io_backend", {"type": "disk"})
    name = opt["name"]
    if is_train:
        exp = root / "experiments" / name
        path.setdefault("experiments_root", str(exp))
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
    """Load ``path``, apply ``--set`` overrides, validate and fill defaults.

    Args:
        path: the YAML option file.
        overrides: ``key.path=value`` strings.
        is_train: training options need ``datasets.train`` and ``train``.
        root: folder under which ``experiments/`` and ``results/`` go (default: cwd).
    """
    source = str(path)
    opt = load_yaml(path)
    apply_overrides(opt, overrides, source)
    validate(opt, source, is_train=is_train)
    opt = copy.deepcopy(opt)
    _fill_defaults(opt, is_train=is_train, root=Path(root) if root else Path(os.getcwd()))
    opt["opt_path"] = source
    return opt


def dump_options(opt: Dict[str, Any]) -> str:
    """YAML text of ``opt`` (for the copy saved beside an experiment)."""
    return yaml.safe_dump(opt, sort_keys=False, default_flow_style=None)


def dataset_keys(opt: Dict[str, Any], phase: str) -> List[str]:
    """Keys of ``datasets`` whose phase is ``phase`` ('train', 'val' or 'test'), in file order."""
    return [k for k, ds in (opt.get("datasets") or {}).items() if ds.get("phase") == phase]
