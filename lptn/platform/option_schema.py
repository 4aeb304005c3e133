"""The declared schema of the YAML option files: every block, every key, its type, range,
default and meaning, checked in one pass by :func:`check_option_tree`.

The schema is data (:class:`Key`, :class:`Section`, :class:`SectionMap` and the value kinds
below), so that the same declaration checks a file, normalises it (``5e3`` -> ``5000`` for
integer keys), fills its defaults (:func:`fill_defaults`: every key of every block, the one
place defaults are applied; a :class:`Computed` default is documentation only) and writes
docs/OPTIONS.md
(:mod:`lptn.engine.option_docs`). Blocks resolved through a registry by ``type`` (networks,
losses, metrics, optimisers, schedulers, datasets) declare only the keys the framework itself
reads; the arguments of the registered class are checked against its signature by
:mod:`lptn.engine.option_check`, which may import the
registries (this layer may not).

Keys of the original LPTN / BasicSR files that lptn does not implement are declared with
``status="ignored"`` (a warning naming the key) and keys the runner sets (``is_train``...)
with ``status="runner"``; nothing in a file is dropped without a word.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from lptn.platform.amp_backend import AMP_BACKENDS, AMP_DTYPES, APEX_OPT_LEVELS
from lptn.platform.compilation import COMPILE_MODES
from lptn.platform.distributed import DEFAULT_PORT, DIST_BACKENDS
from lptn.platform.number_check import SchemaViolation as SchemaViolation
from lptn.platform.number_check import describe_range, describe_whole, in_range, is_whole
from lptn.platform.number_check import whole_number as whole_number
from lptn.platform.runtime import DEFAULT_PRECISION, PRECISIONS


# ------------------------------------------------------------------------------ value kinds
class Kind:
    """A kind of value: :meth:`check` returns the normalised value or raises."""

    def describe(self) -> str:
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def normalise(self, value: Any) -> Any:
        return value

    def check(self, value: Any, key_path: str) -> Any:
        if not self.accepts(value):
            raise SchemaViolation(key_path, f" must be {self.describe()}, got {value!r}")
        return self.normalise(value)


@dataclass(frozen=True)
class Boolean(Kind):
    """``true`` or ``false`` (YAML booleans; never a number)."""

    def describe(self) -> str:
        return "true or false"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Integer(Kind):
    """A whole number (a float such as ``5e3`` with no fraction is taken) within bounds."""

    minimum: Optional[int] = None
    maximum: Optional[int] = None

    def describe(self) -> str:
        return describe_whole(self.minimum, self.maximum)

    def accepts(self, value: Any) -> bool:
        return is_whole(value, self.minimum, self.maximum)

    def normalise(self, value: Any) -> Any:
        return int(value)


@dataclass(frozen=True)
class Number(Kind):
    """An int or float; ``low``/``high`` bounds, open (exclusive) when ``*_open``."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        return describe_range(self.low, self.high, self.low_open, self.high_open)

    def accepts(self, value: Any) -> bool:
        return in_range(value, self.low, self.high, self.low_open, self.high_open)


@dataclass(frozen=True)
class Text(Kind):
    """A string; ``choices`` limits it to those values."""

    choices: Tuple[str, ...] = ()
    what: str = "a string"

    def describe(self) -> str:
        if len(self.choices) == 1:
            return repr(self.choices[0])
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return self.what

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and (not self.choices or value in self.choices)


@dataclass(frozen=True)
class Null(Kind):
    """``~`` (YAML null): the key is absent or left to the code's choice."""

    def describe(self) -> str:
        return "~"

    def accepts(self, value: Any) -> bool:
        return value is None


@dataclass(frozen=True)
class AnyOf(Kind):
    """The first of ``kinds`` that accepts the value normalises it."""

    kinds: Tuple[Kind, ...]

    def describe(self) -> str:
        return " or ".join(k.describe() for k in self.kinds)

    def accepts(self, value: Any) -> bool:
        return any(k.accepts(value) for k in self.kinds)

    def normalise(self, value: Any) -> Any:
        return next(k for k in self.kinds if k.accepts(value)).normalise(value)


def optional(kind: Kind) -> AnyOf:
    """``kind`` or ``~``."""
    return AnyOf((kind, Null()))


@dataclass(frozen=True)
class ListOf(Kind):
    """A YAML list of ``item`` values, ``length`` long when given."""

    item: Kind
    length: Optional[int] = None
    min_length: int = 0

    def describe(self) -> str:
        size = f"{self.length} " if self.length is not None else ""
        return f"a list of {size}({self.item.describe()})"

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)):
            return False
        if self.length is not None and len(value) != self.length:
            return False
        return len(value) >= self.min_length and all(self.item.accepts(v) for v in value)

    def normalise(self, value: Any) -> Any:
        return [self.item.normalise(v) for v in value]


@dataclass(frozen=True)
class Anything(Kind):
    """Any value: the key is checked where it is used (a registered class's arguments)."""

    what: str = "any value"

    def describe(self) -> str:
        return self.what

    def accepts(self, value: Any) -> bool:
        return True


# ---------------------------------------------------------------------------- structure
#: ``status`` of a key: used by lptn; set by the runner (a value in the file is replaced); a
#: BasicSR/LPTN key lptn does not implement (warned about, ignored); a BasicSR key lptn
#: refuses because ignoring it would change the results; a BasicSR spelling of an lptn key
#: (``alias``: the value moves to that key).
STATUSES = ("used", "runner", "ignored", "refused", "alias")

NO_DEFAULT = object()


class Computed(str):
    """A default that describes what the consumer computes (``experiments/<name>``, ``the
    dataset key``), not a value: it is documented but never filled in, even where the text
    would pass as a value of the key's kind."""


@dataclass(frozen=True)
class Key:
    """One option: its kind (or a nested :class:`Section` / :class:`SectionMap`), a one-line
    doc, the default (what the code does when the key is absent: applied by
    :func:`fill_defaults` when it is a value of the kind and not :class:`Computed`, else the
    description of what the consumer computes) and its status."""

    kind: Any
    doc: str
    default: Any = NO_DEFAULT
    required: bool = False
    status: str = "used"
    alias_of: Optional[str] = None

    def __post_init__(self) -> None:
        # A mistyped status would be handled as "used" without a word: refuse it where the
        # schema is declared, at import, not when a user's file happens to hold the key.
        if self.status not in STATUSES:
            choices = ", ".join(STATUSES)
            raise ValueError(f"Key status must be one of {choices}; got {self.status!r}")
        if (self.status == "alias") != (self.alias_of is not None):
            raise ValueError(f"Key alias_of goes with status='alias' only; got {self.status!r}")


@dataclass(frozen=True)
class Section:
    """A mapping with declared keys. ``registry``: the block names a registered class or
    function in ``type``; keys not declared here are that object's arguments (checked by the
    engine against its signature, see :mod:`lptn.engine.option_check`)."""

    keys: Dict[str, Key]
    doc: str = ""
    registry: Optional[str] = None


@dataclass(frozen=True)
class SectionMap:
    """A mapping of user-named blocks that all follow ``section`` (``datasets``,
    ``val.metrics``). ``key_rule`` returns an error text for a bad block name, or None."""

    section: Section
    doc: str = ""
    key_rule: Optional[Callable[[str], Optional[str]]] = None
    key_doc: str = "any name"


@dataclass
class CheckResult:
    """What :func:`check_option_tree` found: the normalised options and the warnings."""

    options: Dict[str, Any]
    warnings: List[str] = field(default_factory=list)


def _nearest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known: {', '.join(sorted(candidates))})"


def _used_keys(section: Section) -> List[str]:
    return [name for name, key in section.keys.items() if key.status == "used"]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _check_section(
    section: Section, value: Any, key_path: str, warnings: List[str], required: bool = True
) -> Dict[str, Any]:
    if not isinstance(value, dict):
        what = "a mapping with a 'type'" if section.registry else "a mapping"
        raise SchemaViolation(key_path or "options", f" must be {what}, got {value!r}")
    out: Dict[str, Any] = {}
    for name, item in value.items():
        path = _join(key_path, name)
        key = section.keys.get(name)
        if key is None:
            if section.registry is not None:
                out[name] = item  # an argument of the registered type: checked by the engine
                continue
            raise SchemaViolation(path, f": unknown key{_nearest(name, _used_keys(section))}")
        if key.status == "refused":
            raise SchemaViolation(path, f": {key.doc}")
        if key.status == "ignored":
            warnings.append(f"{path}: ignored ({key.doc})")
        elif key.status == "runner":
            warnings.append(f"{path}: {key.doc}; the value in the file is not used")
        elif key.alias_of is not None:
            target = key.alias_of
            checked = _check_value(section.keys[target].kind, item, path, warnings, required)
            if target in value and value[target] != item:
                raise SchemaViolation(path, f": contradicts {target} (the same option)")
            out[target] = checked
            continue
        out[name] = _check_value(key.kind, item, path, warnings, required)
    for name, key in section.keys.items():
        if required and key.required and value.get(name) is None:
            typo = difflib.get_close_matches(name, [str(k) for k in value], n=1, cutoff=0.6)
            hint = f" (is {typo[0]} a misspelling?)" if typo else ""
            raise SchemaViolation(_join(key_path, name), f": required key is missing{hint}")
    return out


def _check_value(
    kind: Any, value: Any, key_path: str, warnings: List[str], required: bool = True
) -> Any:
    if isinstance(kind, Section):
        return _check_section(kind, value, key_path, warnings, required)
    if isinstance(kind, SectionMap):
        if not isinstance(value, dict):
            raise SchemaViolation(key_path, f" must be a mapping, got {value!r}")
        out = {}
        for name, block in value.items():
            if kind.key_rule is not None:
                problem = kind.key_rule(str(name))
                if problem:
                    raise SchemaViolation(_join(key_path, name), f": {problem}")
            out[name] = _check_section(
                kind.section, block, _join(key_path, name), warnings, required
            )
        return out
    if isinstance(kind, OptionalSection):
        if value is None:
            return None
        return _check_value(kind.inner, value, key_path, warnings, required)
    return kind.check(value, key_path)


def check_key(section: Section, name: str, value: Any, spelled: str) -> Any:
    """``value`` of ``section``'s key ``name``, checked and normalised; a bad one raises a
    :class:`SchemaViolation` naming it as ``spelled`` (a YAML key path, a ``--flag`` or a query
    parameter), so that every spelling of one option gets the same rule and message."""
    kind = section.keys[name].kind
    if spelled.startswith("--") and isinstance(kind, AnyOf) and value is not None:
        # A flag left out is the key's ~, so the message offers only what a flag can say.
        kind = AnyOf(tuple(k for k in kind.kinds if not isinstance(k, Null)))
    return _check_value(kind, value, spelled, [])


def check_block(section: Section, value: Any, key_path: str) -> Dict[str, Any]:
    """A whole block (a mapping) checked against ``section``: unknown keys and bad values raise
    a :class:`SchemaViolation` naming ``key_path.key``; the keys given, normalised."""
    return _check_section(section, value, key_path, [])


@dataclass(frozen=True)
class OptionalSection:
    """A nested section that may also be ``~`` (absent)."""

    inner: Any


def check_option_tree(
    opt: Dict[str, Any], *, is_train: bool, schema: Optional[Section] = None
) -> CheckResult:
    """Check ``opt`` against the schema (default :data:`OPTIONS`) and return a normalised
    copy with every plain default filled in (:func:`fill_defaults`), plus warnings. Raises
    :class:`SchemaViolation` for the first problem found."""
    schema = schema or OPTIONS
    warnings: List[str] = []
    checked = fill_defaults(schema, opt, "", warnings)
    if is_train:
        for name in ("datasets", "train"):
            if checked.get(name) is None:
                raise SchemaViolation(name, ": required for training")
        if "train" not in checked["datasets"]:
            raise SchemaViolation("datasets.train", ": required for training")
        for name in ("total_iter", "optim_g"):
            if checked["train"].get(name) is None:
                raise SchemaViolation(f"train.{name}", ": required for training")
    return CheckResult(checked, warnings)


def plain_default(key: Key, key_path: str) -> Any:
    """The default of ``key`` as a value (NO_DEFAULT when it has none, or when the declared
    default is a description of what the consumer computes, such as ``input for
    UnPairedImageDataset, else gt``: a default that is not a value of the key's own kind)."""
    if key.default is NO_DEFAULT or key.status != "used" or isinstance(key.default, Computed):
        return NO_DEFAULT
    try:
        return _check_value(key.kind, key.default, key_path, [])
    except SchemaViolation:
        return NO_DEFAULT


def fill_defaults(
    section: Section,
    block: Optional[Dict[str, Any]],
    key_path: str,
    warnings: Optional[List[str]] = None,
    *,
    required: bool = True,
) -> Dict[str, Any]:
    """``block`` (``~`` = empty) checked against ``section``, each absent key that has a plain
    default (:func:`plain_default`) given it, in nested blocks too (a ``datasets`` entry's
    ``io_backend``, each ``val.metrics`` block...): the one place defaults are applied. A
    nested block given as ``~`` whose key defaults to a mapping is that default. Checking an
    already filled block again changes nothing. ``warnings`` collects the check's warnings
    (ignored keys, keys the runner sets); ``required=False`` lets required keys, nested ones
    too, be absent (a part of a block: the loader's keys of a dataset, a model's options)."""
    checked = _check_section(
        section,
        {} if block is None else block,
        key_path,
        [] if warnings is None else warnings,
        required,
    )
    return _filled_section(section, checked, key_path)


def _filled_section(section: Section, block: Dict[str, Any], key_path: str) -> Dict[str, Any]:
    out = dict(block)
    for name, key in section.keys.items():
        path = _join(key_path, name)
        if name not in out or (out[name] is None and _is_block(key.kind)):
            default = plain_default(key, path)
            if default is NO_DEFAULT or (name in out and not isinstance(default, dict)):
                continue
            out[name] = default
        out[name] = _filled_value(key.kind, out[name], path)
    return out


def _is_block(kind: Any) -> bool:
    return isinstance(kind, (Section, SectionMap, OptionalSection))


def _filled_value(kind: Any, value: Any, key_path: str) -> Any:
    if isinstance(kind, OptionalSection):
        return None if value is None else _filled_value(kind.inner, value, key_path)
    if isinstance(kind, Section):
        return _filled_section(kind, value, key_path)
    if isinstance(kind, SectionMap):
        return {
            name: _filled_section(kind.section, block, _join(key_path, name))
            for name, block in value.items()
        }
    return value


# --------------------------------------------------------------------------- the schema
DEVICES = ("auto", "cuda", "npu", "mps", "cpu")
PRECISION_NAMES = tuple(PRECISIONS)
#: must equal lptn.data's own tables (a test compares them)
IO_BACKENDS = ("disk", "lmdb", "memory")
SMALL_IMAGE_POLICIES = ("error", "pad", "resize")
PAIR_SIZE_POLICIES = ("error", "resize_gt")
PREFETCH_MODES = ("cpu", "cuda", "npu")
INFERENCE_PATHS = ("fast", "exact", "graph")
CONV_BACKENDS = ("auto", "generic", "onednn", "openvino")
PIXEL_TARGETS = ("input", "gt")
D_STEP_INPUTS = ("recompute", "reuse")

_BOOL = Boolean()
_PATH = Text(what="a path")
_OPT_PATH = optional(_PATH)
_POS_INT = Integer(minimum=1)
_AUTO_BOOL = AnyOf((Boolean(), Text(("auto",))))
_COMPILE = AnyOf((Boolean(), Text(COMPILE_MODES)))
_SIZE = ListOf(_POS_INT, length=2)
_RUNNER = "set by the runner"


def _dataset_key_rule(name: str) -> Optional[str]:
    if name.startswith(("train", "val", "test")):
        return None
    return "dataset keys must start with train, val or test (train, val_1, test...)"


IO_BACKEND = Section(
    {
        "type": Key(Text(IO_BACKENDS), "how images are read", default="disk"),
        "source": Key(
            Text(("auto", "disk", "lmdb")),
            "memory backend: what to decode into shared memory (auto: an LMDB when the "
            "root holds data.mdb)",
            default="auto",
        ),
        "decode_threads": Key(
            optional(_POS_INT),
            "memory backend: threads decoding at start-up (~ = up to 8, one per core)",
            default=None,
        ),
        "db_paths": Key(
            Anything(), "BasicSR sets it from dataroot_*; lptn does too", status="ignored"
        ),
        "client_keys": Key(Anything(), "BasicSR's LMDB client names; not needed", status="ignored"),
    },
    doc="file backend of a dataset",
)

DATASET = Section(
    {
        "type": Key(
            Text(what="a registered dataset type"),
            "dataset class: PairedImageDataset or UnPairedImageDataset",
            required=True,
        ),
        "name": Key(Text(), "name in logs and result folders", default=Computed("the dataset key")),
        "phase": Key(Text(("train", "val", "test")), _RUNNER + " from the key", status="runner"),
        "dataroot_lq": Key(_PATH, "input images: a folder or an .lmdb", required=True),
        "dataroot_gt": Key(
            _OPT_PATH, "targets (paired) or reference set (unpaired): folder or .lmdb"
        ),
        "meta_info_file": Key(
            _OPT_PATH, "PairedImageDataset: text file listing the images to use", default=None
        ),
        "filename_tmpl": Key(
            Text(),
            "PairedImageDataset (BasicSR): input name from target name ('{}_lq' = lq_name "
            "'{stem}_lq')",
            default="{}",
        ),
        "lq_name": Key(
            Text(),
            "PairedImageDataset: input file name without extension, {stem} = the shared part",
            # Not filled in: it would contradict a filename_tmpl (the pairing applies it).
            default=Computed("{stem}"),
        ),
        "gt_name": Key(
            Text(),
            "PairedImageDataset: target file name without extension ('{stem}_edited', "
            "'{stem}-Edit', 'edited_{stem}')",
            default="{stem}",
        ),
        "pair_size": Key(
            Text(PAIR_SIZE_POLICIES),
            "PairedImageDataset: a target at another size than its input is an error, or "
            "resized to it (same shape within 1%)",
            default="error",
        ),
        "io_backend": Key(IO_BACKEND, "file backend", default={"type": "disk"}),
        "gt_size": Key(optional(_POS_INT), "train: square crop side in pixels", default=None),
        "if_fix_size": Key(
            _BOOL,
            "train: crop to gt_size (false: full images, of one size when batch > 1)",
            default=True,
        ),
        "use_flip": Key(_BOOL, "train: random horizontal flips", default=False),
        "use_rot": Key(_BOOL, "train: random vertical flips and 90-degree turns", default=False),
        "small_image": Key(
            Text(SMALL_IMAGE_POLICIES),
            "train: images smaller than gt_size are an error, padded or resized",
            default="error",
        ),
        "augment_on_device": Key(
            _AUTO_BOOL,
            "train: crop/flip on the device (auto: when prefetch_mode is cuda or npu)",
            default="auto",
        ),
        "use_shuffle": Key(_BOOL, "train: shuffle every epoch", default=True),
        "num_worker_per_gpu": Key(Integer(minimum=0), "DataLoader workers per process", default=0),
        "batch_size_per_gpu": Key(_POS_INT, "train: batch size per process (required there)"),
        "dataset_enlarge_ratio": Key(
            _POS_INT, "train: each epoch visits every image this many times", default=1
        ),
        "prefetch_mode": Key(
            optional(Text(PREFETCH_MODES)),
            "train: ~ (plain), cpu, or cuda/npu (side-stream copies)",
            default=None,
        ),
        "pin_memory": Key(_BOOL, "page-locked batches (faster host-to-device copies)", False),
        "num_prefetch_queue": Key(
            Anything(),
            "BasicSR's CPU prefetch queue length; lptn's prefetcher needs none",
            status="ignored",
        ),
        "use_hflip": Key(
            _BOOL,
            "BasicSR's name for use_flip (random horizontal flips); read as use_flip",
            default=False,
            status="alias",
            alias_of="use_flip",
        ),
        "color": Key(
            Anything(),
            "BasicSR's y-channel loading; LPTN works on RGB (remove the key)",
            status="refused",
        ),
        "mean": Key(
            Anything(), "BasicSR's input normalisation; LPTN takes [0, 1] RGB", status="refused"
        ),
        "std": Key(
            Anything(), "BasicSR's input normalisation; LPTN takes [0, 1] RGB", status="refused"
        ),
    },
    doc="one dataset and its loader",
)

NETWORK = Section(
    {
        "type": Key(
            Text(what="a registered arch type"),
            "LPTN, LPTNPaper, ImageAdaptive3DLUT or Discriminator",
            required=True,
        )
    },
    doc="a network: `type` plus the arguments of that class",
    registry="arch",
)

PATH = Section(
    {
        "pretrain_network_g": Key(_OPT_PATH, "generator weights to start from", default=None),
        "pretrain_network_d": Key(_OPT_PATH, "critic weights to start from", default=None),
        "strict_load_g": Key(_BOOL, "generator weights must match exactly", default=True),
        "strict_load_d": Key(_BOOL, "critic weights must match exactly", default=True),
        "param_key_g": Key(
            optional(Text()), "key inside the .pth (params, params_ema; ~ = auto)", default=None
        ),
        "param_key_d": Key(optional(Text()), "as param_key_g, for the critic", default=None),
        "resume_state": Key(_OPT_PATH, "training state (.state) to continue from", default=None),
        "experiments_root": Key(
            _PATH,
            "training output folder (models, states, log, images, TensorBoard)",
            default=Computed("experiments/<name>"),
        ),
        "results_root": Key(_PATH, "test output folder", default=Computed("results/<name>")),
        "models": Key(_PATH, "saved networks", default=Computed("<experiments_root>/models")),
        "training_states": Key(
            _PATH, "saved training states", default=Computed("<experiments_root>/training_states")
        ),
        "log": Key(_PATH, "log files", default=Computed("the experiment / results folder")),
        "visualization": Key(_PATH, "saved images", default=Computed("<root>/visualization")),
        "tb_logger": Key(
            _OPT_PATH,
            "TensorBoard folder",
            default=Computed(
                "tb_logger/<name> beside experiments/; <experiments_root>/tb_logger when "
                "experiments_root is set"
            ),
        ),
        "root": Key(Anything(), "BasicSR's repository root; lptn uses the cwd", status="ignored"),
        "ignore_resume_networks": Key(
            Anything(), "BasicSR resume detail; lptn restores every network", status="ignored"
        ),
    },
    doc="weights to load and output folders",
)

OPTIMIZER = Section(
    {
        "type": Key(
            Text(what="a registered optimizer type"),
            "Adam, AdamW or an apex FusedAdam...",
            required=True,
        ),
        "lr": Key(Number(0, None, low_open=True), "learning rate", required=True),
        "betas": Key(ListOf(Number(0, 1, high_open=True), length=2), "Adam: moment decays"),
        # The optimiser's own defaults apply (AdamW's weight decay is 0.01, apex's FusedAdam
        # takes no fused/foreach): nothing is filled in for them.
        "weight_decay": Key(
            Number(0, None),
            "weight decay (L2 / AdamW decoupled)",
            default=Computed("the optimiser's (0; AdamW 0.01)"),
        ),
        "fused": Key(
            optional(_BOOL),
            "torch's fused kernel (not with apex AMP)",
            default=Computed("the optimiser's (~)"),
        ),
        "foreach": Key(
            optional(_BOOL), "torch's multi-tensor kernel", default=Computed("the optimiser's (~)")
        ),
    },
    doc="an optimiser: `type` plus its arguments (lr, betas, weight_decay, fused...)",
    registry="optimizer",
)

SCHEDULER = Section(
    {
        "type": Key(
            Text(what="a registered scheduler type"),
            "MultiStepLR or CosineAnnealingRestartLR",
            required=True,
        )
    },
    doc="learning-rate schedule: `type` plus its arguments (per iteration)",
    registry="scheduler",
)

LOSS = Section(
    {
        "type": Key(
            Text(what="a registered loss type"), "MSELoss, L1Loss, GANLoss...", required=True
        )
    },
    doc="a loss: `type` plus its arguments",
    registry="loss",
)

GRADIENT_PENALTY = Section(
    {
        "type": Key(
            Text(what="a registered loss type"),
            "the penalty class",
            default="GradientPenaltyLoss",
        )
    },
    doc="the critic's gradient penalty: `loss_weight` (type optional)",
    registry="loss",
)

AMP = Section(
    {
        "enabled": Key(_BOOL, "mixed-precision training", default=False),
        "dtype": Key(
            Text(tuple(AMP_DTYPES)),
            "autocast dtype (fp16 adds loss scaling)",
            default=Computed("bf16 (apex: fp16)"),
        ),
        "backend": Key(Text(AMP_BACKENDS), "torch autocast or apex AMP", default="native"),
        "opt_level": Key(Text(APEX_OPT_LEVELS), "apex: optimisation level", "O1"),
        "loss_scale": Key(
            AnyOf((Text(("dynamic",)), Number(0, None, low_open=True))),
            "apex: loss scale",
            default="dynamic",
        ),
        "combine_grad": Key(optional(_BOOL), "apex (Ascend): one fused gradient buffer", None),
    },
    doc="mixed precision (lptn.platform.amp_backend)",
)

TRAIN = Section(
    {
        "total_iter": Key(_POS_INT, "iterations to train (required by train.py)"),
        "warmup_iter": Key(
            AnyOf((Integer(minimum=-1), Null())),
            "linear learning-rate warm-up iterations (-1 = none)",
            default=-1,
        ),
        "optim_g": Key(OPTIMIZER, "generator optimiser (required by train.py)"),
        "optim_d": Key(OptionalSection(OPTIMIZER), "critic optimiser (with network_d)"),
        "scheduler": Key(
            OptionalSection(SCHEDULER), "learning-rate schedule (~ = constant)", default=None
        ),
        "pixel_opt": Key(OptionalSection(LOSS), "pixel loss (MSELoss, L1Loss...)", default=None),
        "gan_opt": Key(OptionalSection(LOSS), "adversarial loss (GANLoss)", default=None),
        "gp_opt": Key(OptionalSection(GRADIENT_PENALTY), "critic gradient penalty", default=None),
        "lut_smooth_opt": Key(
            OptionalSection(LOSS),
            "3D-LUT smoothness (LUTSmoothnessLoss; the paper's loss_weight 1e-4)",
            default=None,
        ),
        "lut_mono_opt": Key(
            OptionalSection(LOSS),
            "3D-LUT monotonicity (LUTMonotonicityLoss; the paper's loss_weight 10)",
            default=None,
        ),
        "pixel_target": Key(
            Text(PIXEL_TARGETS),
            "pixel loss against the input (unpaired) or gt (paired)",
            default=Computed("input for UnPairedImageDataset, else gt"),
        ),
        "d_step_input": Key(
            Text(D_STEP_INPUTS),
            "critic sees G(lq) after the generator step, or the step's output",
            default="recompute",
        ),
        "net_d_iters": Key(_POS_INT, "update the generator every N-th iteration", default=1),
        "net_d_init_iters": Key(
            Integer(minimum=0), "critic-only iterations at the start", default=0
        ),
        "max_consecutive_nonfinite": Key(
            _POS_INT, "stop after this many non-finite steps in a row", default=5
        ),
        "channels_last": Key(_BOOL, "NHWC memory format for networks and batches", False),
        "compile": Key(_COMPILE, "torch.compile the generator (true or a mode)", False),
        "amp": Key(OptionalSection(AMP), "mixed precision", default=None),
        "ema_decay": Key(
            optional(Number(0, 1, high_open=True)),
            "exponential moving average of the generator, saved as params_ema (0 or ~ = no EMA)",
            default=0,
        ),
        "perceptual_opt": Key(
            Anything(),
            "BasicSR's perceptual loss is not part of LPTN (remove it)",
            status="refused",
        ),
    },
    doc="training: optimisers, schedule, losses, speed",
)


METRIC = Section(
    {
        "type": Key(
            Text(what="a registered metric type"),
            "calculate_psnr, calculate_ssim...",
            required=True,
        ),
        "better": Key(
            Text(("higher", "lower")),
            "which direction is better (best model)",
            # A distance (delta E) declares itself lower (lptn.metrics.lower_is_better).
            default=Computed("the metric's (higher; lower for delta E)"),
        ),
    },
    doc="a metric: `type` plus its arguments (crop_border, test_y_channel...)",
    registry="metric",
)

VAL = Section(
    {
        "val_freq": Key(optional(_POS_INT), "train: validate every N iterations", None),
        "save_img": Key(_BOOL, "save output images", default=False),
        "save_comparison": Key(_BOOL, "test: save input|output|target panels", default=False),
        "suffix": Key(optional(Text()), "appended to saved image names", default=None),
        "metrics": Key(
            OptionalSection(
                SectionMap(METRIC, doc="Metrics", key_doc="metric name (psnr, ssim...)")
            ),
            "metrics by name",
            default=None,
        ),
        "tb_comparisons": Key(
            Integer(minimum=0), "train: comparison panels sent to TensorBoard", default=3
        ),
        "precision": Key(
            AnyOf((Text(PRECISION_NAMES), ListOf(Text(PRECISION_NAMES), min_length=1))),
            "test / speed: inference precision",
            default=DEFAULT_PRECISION,
        ),
        "num_img": Key(_POS_INT, "speed: images timed", default=1),
        "times_per_img": Key(_POS_INT, "speed: timed runs per image and size", default=10),
        "warmup": Key(Integer(minimum=0), "speed: untimed runs first", default=3),
        "fix_img_size": Key(
            AnyOf((_SIZE, ListOf(_SIZE, min_length=1), Null())),
            "speed: [H, W] or a list of [H, W] (~ = original sizes)",
            default=None,
        ),
        "pbar": Key(
            Anything(), "BasicSR's validation bar; lptn: logger.progress_bar", status="ignored"
        ),
    },
    doc="validation (training), evaluation (test.py) and speed (test_speed.py)",
)

WANDB = Section(
    {
        "project": Key(optional(Text()), "W&B project (~ = off)", default=None),
        "resume_id": Key(optional(Text()), "W&B run to continue", default=None),
        "entity": Key(optional(Text()), "W&B team or user", default=None),
    },
    doc="Weights & Biases logging, optional extra `wandb`",
)

LOGGER = Section(
    {
        "print_freq": Key(_POS_INT, "log a line every N iterations", default=100),
        "save_checkpoint_freq": Key(_POS_INT, "save networks + state every N iterations", 5000),
        "use_tb_logger": Key(_BOOL, "TensorBoard scalars and images", default=False),
        "progress_bar": Key(_AUTO_BOOL, "progress bar (auto: on a terminal)", default="auto"),
        "wandb": Key(
            OptionalSection(WANDB),
            "Weights & Biases logging, optional extra `wandb`",
            default=None,
        ),
    },
    doc="logging",
)

DIST_PARAMS = Section(
    {
        "backend": Key(
            optional(Text(DIST_BACKENDS)),
            "process-group backend (~ = by device: nccl, hccl, gloo)",
            default=None,
        ),
        "port": Key(optional(Integer(1, 65535)), "rendezvous port (slurm)", default=DEFAULT_PORT),
        "timeout_min": Key(Number(0, None, low_open=True), "collective timeout, minutes", 30),
    },
    doc="several processes (lptn.platform.distributed)",
)

INFERENCE = Section(
    {
        "path": Key(Text(INFERENCE_PATHS), "fast (tiled), exact (plain network) or graph", "fast"),
        "compile": Key(_COMPILE, "graph path: torch.compile (true or a mode)", default=False),
        "tile_size": Key(optional(Integer(minimum=16)), "fast: tile side (~ = auto)", None),
        "memory_budget_mb": Key(
            optional(Number(0, None, low_open=True)),
            "fast: working-memory budget (~ = 768 CPU / 4096 elsewhere)",
            default=None,
        ),
        "channels_last": Key(_BOOL, "conv stacks in channels_last", default=True),
        "conv_backend": Key(Text(CONV_BACKENDS), "fast: CPU conv implementation", "auto"),
    },
    doc="test / speed inference path (lptn.inference.settings)",
)

#: The photo options of ``lptn-enhance`` and ``lptn-serve`` (no YAML block): their flags, the
#: service's query and :class:`lptn.photo.settings.PhotoSettings` are checked against these.
PHOTO = Section(
    {
        "strength": Key(
            Number(0, 1), "output = input + strength * (enhanced - input)", default=1.0
        ),
        "jpeg_quality": Key(Integer(1, 100), "quality of JPEG and lossy WebP outputs", 95),
        # Above the 100-150 MP of medium-format cameras and the 240 MP of pixel-shift
        # composites, below the 400 MP of a 20000x20000 "decompression bomb".
        "max_megapixels": Key(
            Number(0, None, low_open=True),
            "photos whose header announces more pixels fail before they are decoded",
            default=250.0,
        ),
    },
    doc="photo output (lptn-enhance, lptn-serve)",
)

OPTIONS = Section(
    {
        "name": Key(
            Text(), "experiment name: the folder under experiments/ or results/", required=True
        ),
        "model_type": Key(
            Text(what="a registered model type"),
            "LPTNModel (train.py) or LPTNTestModel (test.py, test_speed.py)",
            required=True,
        ),
        "num_gpu": Key(
            AnyOf((Integer(minimum=0), Text(("auto",)))),
            "0 = CPU; auto or N = the first accelerator found (one per process); train.py "
            "without a launcher: N > 1 multiplies the train batch and workers by N, as "
            "BasicSR's one-process DataParallel run (with a warning)",
            default="auto",
        ),
        "device": Key(Text(DEVICES), "device kind; wins over num_gpu", default="auto"),
        "manual_seed": Key(optional(Integer()), "random seed (~ = random)", default=None),
        "tf32": Key(_BOOL, "CUDA float32 convs/matmuls may use TF32", default=False),
        "find_unused_parameters": Key(_BOOL, "DDP: some parameters get no gradient", default=False),
        "datasets": Key(
            SectionMap(
                DATASET,
                key_rule=_dataset_key_rule,
                doc="Datasets",
                key_doc="train, val*, test* (the phase is the prefix)",
            ),
            "datasets by phase",
        ),
        "network_g": Key(NETWORK, "generator", required=True),
        "network_d": Key(OptionalSection(NETWORK), "critic (training; ~ = none)", default=None),
        "path": Key(OptionalSection(PATH), "weights and folders", default={}),
        "train": Key(OptionalSection(TRAIN), "training settings (train.py)"),
        "val": Key(OptionalSection(VAL), "validation / test / speed settings", default={}),
        "logger": Key(OptionalSection(LOGGER), "logging", default={}),
        "dist_params": Key(OptionalSection(DIST_PARAMS), "distributed settings", default={}),
        "inference": Key(OptionalSection(INFERENCE), "inference path (test / speed)"),
        "scale": Key(
            Anything(), "BasicSR's super-resolution factor; LPTN keeps the size", status="ignored"
        ),
        "is_train": Key(Anything(), _RUNNER + " (train.py: true)", status="runner"),
        "dist": Key(Anything(), _RUNNER + " (--launcher)", status="runner"),
        "rank": Key(Anything(), _RUNNER + " (--launcher)", status="runner"),
        "world_size": Key(Anything(), _RUNNER + " (--launcher)", status="runner"),
        "opt_path": Key(Anything(), _RUNNER + " (-opt)", status="runner"),
    },
    doc="the option file",
)

_LOSS_WEIGHT = Number(0, None)
_LPTN_ARGUMENTS: Dict[str, Kind] = {
    "nrb_low": Integer(minimum=0),
    "nrb_high": Integer(minimum=0),
    # L = 0 has no high-frequency band to translate.
    "num_high": Integer(minimum=1),
}
_PIXEL_LOSS_ARGUMENTS: Dict[str, Kind] = {"loss_weight": _LOSS_WEIGHT}

#: value ranges of arguments of registered types, by type name, where the annotation (``int``,
#: ``float``) lets through values the class cannot use; the engine's option check applies
#: them in place of the annotation's kind, and docs/OPTIONS.md lists them.
ARGUMENT_RANGES: Dict[str, Dict[str, Kind]] = {
    "LPTN": _LPTN_ARGUMENTS,
    "LPTNPaper": _LPTN_ARGUMENTS,
    "Discriminator": {
        # RGB images; the released critic's final 8x8 convolution needs 256x256 inputs.
        "in_channels": Integer(3, 3),
        "input_size": Integer(256, 256),
    },
    "MSELoss": _PIXEL_LOSS_ARGUMENTS,
    "L1Loss": _PIXEL_LOSS_ARGUMENTS,
    "CharbonnierLoss": {"loss_weight": _LOSS_WEIGHT, "eps": Number(0, None, low_open=True)},
    "GANLoss": {
        "loss_weight": _LOSS_WEIGHT,
        "real_label_val": Number(),
        "fake_label_val": Number(),
    },
    "GradientPenaltyLoss": {"loss_weight": _LOSS_WEIGHT},
    "ImageAdaptive3DLUT": {
        "num_luts": Integer(minimum=1),
        # 2 points is the least a trilinear table needs; 65 (.cube's usual largest) is 824k entries.
        "lut_size": Integer(2, 129),
        "dropout": Number(0, 1, high_open=True),
    },
    "LUTSmoothnessLoss": {"loss_weight": _LOSS_WEIGHT},
    "LUTMonotonicityLoss": {"loss_weight": _LOSS_WEIGHT},
    # Iterations count from 1; a schedule's rates and weights are never negative.
    "MultiStepLR": {
        "milestones": ListOf(_POS_INT, min_length=1),
        "gamma": Number(0, None, low_open=True),
    },
    "CosineAnnealingRestartLR": {
        "periods": ListOf(_POS_INT, min_length=1),
        "restart_weights": ListOf(Number(0, None), min_length=1),
        "eta_min": Number(0, None),
    },
}

#: the registry-resolved blocks: (key path pattern, registry kind); ``*`` is any name.
REGISTRY_BLOCKS: Tuple[Tuple[str, str], ...] = (
    ("network_g", "arch"),
    ("network_d", "arch"),
    ("train.optim_g", "optimizer"),
    ("train.optim_d", "optimizer"),
    ("train.scheduler", "scheduler"),
    ("train.pixel_opt", "loss"),
    ("train.gan_opt", "loss"),
    ("train.gp_opt", "loss"),
    ("train.lut_smooth_opt", "loss"),
    ("train.lut_mono_opt", "loss"),
    ("val.metrics.*", "metric"),
    ("datasets.*", "dataset"),
)
