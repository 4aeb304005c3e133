"""Typed, frozen settings of a training run, built once from the option blocks by the schema.

Each consumer takes its settings object instead of reading (and defaulting, and checking) the
option dict again: :class:`TrainingSettings` (``train``: the loop and the model's step),
:class:`LoggingSettings` (``logger``), :class:`ValidationSettings` (``val``) and
:class:`DataSettings` (``datasets``). Every default, range and choice comes from
:mod:`lptn.platform.option_schema` (:func:`~lptn.platform.option_schema.fill_defaults`); a
block that was checked already is not changed by building its settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from lptn.platform import option_schema
from lptn.platform.option_schema import SchemaViolation
from lptn.platform.wandb_logger import wandb_settings

# Dataset types whose items have no aligned ground truth: the pixel loss then keeps content.
UNPAIRED_DATASETS = ("UnPairedImageDataset",)


def default_pixel_target(opt: Dict[str, Any]) -> str:
    """``input`` when the training set is unpaired (``UnPairedImageDataset``), else ``gt``."""
    ds_type = ((opt.get("datasets") or {}).get("train") or {}).get("type")
    return "input" if ds_type in UNPAIRED_DATASETS else "gt"


@dataclass(frozen=True)
class TrainingSettings:
    """``train``: the loop's clock and the model's step rule.

    Attributes:
        total_iter: iterations to train (>= 1; None when the block is for a model alone).
        warmup_iter: linear warm-up iterations (-1 = none).
        max_consecutive_nonfinite: non-finite steps in a row that stop the run (>= 1).
        net_d_iters: the generator is updated every N-th iteration (>= 1).
        net_d_init_iters: critic-only iterations at the start (>= 0).
        pixel_target: ``input`` or ``gt``.
        d_step_input: ``recompute`` or ``reuse``.
        ema_decay: generator moving-average decay in [0, 1) (0 = off).
    """

    total_iter: Optional[int]
    warmup_iter: int
    max_consecutive_nonfinite: int
    net_d_iters: int
    net_d_init_iters: int
    pixel_target: str
    d_step_input: str
    ema_decay: float

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> TrainingSettings:
        train = option_schema.fill_defaults(option_schema.TRAIN, opt.get("train"), "train")
        warmup = train["warmup_iter"]
        return cls(
            total_iter=train.get("total_iter"),
            warmup_iter=-1 if warmup is None else warmup,
            max_consecutive_nonfinite=train["max_consecutive_nonfinite"],
            net_d_iters=train["net_d_iters"],
            net_d_init_iters=train["net_d_init_iters"],
            pixel_target=train.get("pixel_target") or default_pixel_target(opt),
            d_step_input=train["d_step_input"],
            ema_decay=float(train["ema_decay"] or 0),
        )


@dataclass(frozen=True)
class LoggingSettings:
    """``logger``.

    Attributes:
        print_freq: a log line every N iterations (>= 1).
        save_checkpoint_freq: a checkpoint every N iterations (>= 1).
        use_tb_logger: TensorBoard scalars and images.
        progress_bar: ``True``, ``False`` or ``'auto'`` (on a terminal).
        wandb: a W&B project is set (``logger.wandb.project``).
    """

    print_freq: int
    save_checkpoint_freq: int
    use_tb_logger: bool
    progress_bar: Union[bool, str]
    wandb: bool

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> LoggingSettings:
        logger = option_schema.fill_defaults(option_schema.LOGGER, opt.get("logger"), "logger")
        return cls(
            print_freq=logger["print_freq"],
            save_checkpoint_freq=logger["save_checkpoint_freq"],
            use_tb_logger=logger["use_tb_logger"],
            progress_bar=logger["progress_bar"],
            wandb=wandb_settings(opt) is not None,
        )

    @property
    def sends_images(self) -> bool:
        """Whether a logger (TensorBoard or W&B) receives the validation panels."""
        return self.use_tb_logger or self.wandb


@dataclass(frozen=True)
class ValidationSettings:
    """``val`` as the training loop reads it.

    Attributes:
        val_freq: validate every N iterations (None = only at the end).
        save_img: save the output images.
        tb_comparisons: input | output | target panels per set for TensorBoard / W&B (>= 0).
        metrics: the ``val.metrics`` blocks by name, in file order (read-only).
        suffix: appended to the saved images' names (None = none).
    """

    val_freq: Optional[int]
    save_img: bool
    tb_comparisons: int
    metrics: Mapping[str, Dict[str, Any]]
    suffix: Optional[str]

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> ValidationSettings:
        val = option_schema.fill_defaults(option_schema.VAL, opt.get("val"), "val")
        return cls(
            val_freq=val["val_freq"],
            save_img=val["save_img"],
            tb_comparisons=val["tb_comparisons"],
            metrics=MappingProxyType(dict(val["metrics"] or {})),
            suffix=val["suffix"],
        )

    @property
    def best_metric(self) -> Optional[str]:
        """The metric that picks ``net_g_best.pth``: the first of ``val.metrics``."""
        return next(iter(self.metrics), None)


@dataclass(frozen=True)
class DataSettings:
    """``datasets`` as training reads it: the one train set and the val sets, by key.

    Attributes:
        train_key: the one ``train*`` key.
        val_keys: the ``val*`` keys in file order.
    """

    train_key: str
    val_keys: Tuple[str, ...]

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> DataSettings:
        datasets = opt.get("datasets") or {}

        def keys(phase: str) -> Tuple[str, ...]:
            return tuple(k for k, ds in datasets.items() if ds.get("phase") == phase)

        train_keys = keys("train")
        if len(train_keys) != 1:
            raise SchemaViolation(
                "datasets",
                f": exactly one train* entry is needed, got {list(train_keys) or 'none'}",
            )
        return cls(train_key=train_keys[0], val_keys=keys("val"))


__all__ = [
    "DataSettings",
    "LoggingSettings",
    "TrainingSettings",
    "UNPAIRED_DATASETS",
    "ValidationSettings",
    "default_pixel_target",
]
