"""Weights & Biases output of a training run (``logger.wandb``), behind the TensorBoard
logger's interface (:mod:`lptn.platform.tensorboard_logger`).

Options, as in BasicSR's schema::

    logger:
      wandb:
        project: lptn-fivek   # ~ (or no wandb block) = off
        resume_id: ~          # a run id: continue that run (a resumed training)
        entity: ~             # team or user; default: the logged-in account's

The run is named after the experiment and carries the options as its config. Training
scalars (losses, learning rates, times) and validation metrics and input | output | target
panels go to the run at the training iteration as step. ``WANDB_MODE=offline`` keeps it on
disk (``wandb sync`` uploads it later) and ``WANDB_DIR`` says where; both are wandb's own
environment variables. wandb is an optional extra: ``pip install 'lptn[wandb]'``.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, Optional

import numpy as np

from lptn.platform.tensorboard_logger import NullTensorBoardLogger

EXTRA_HINT = "pip install 'lptn[wandb]' (or pip install wandb)"


class WandbUnavailable(ImportError):
    """``logger.wandb.project`` is set but the wandb package is not installed."""


def wandb_settings(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``logger.wandb`` block when it names a project, else None (W&B off).

    Raises:
        ValueError: a ``logger.wandb`` that is not a mapping, or keys of the wrong type.
    """
    block = (opt.get("logger") or {}).get("wandb")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ValueError(f"logger.wandb: a mapping with project / resume_id, got {block!r}")
    for key in ("project", "resume_id", "entity"):
        value = block.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"logger.wandb.{key}: a string or ~, got {value!r}")
    return block if block.get("project") else None


def import_wandb() -> Any:
    """The wandb module, or :class:`WandbUnavailable` naming the extra that provides it."""
    try:
        return importlib.import_module("wandb")
    except ImportError as err:
        raise WandbUnavailable(
            f"logger.wandb.project is set but the 'wandb' package is not installed: {EXTRA_HINT}, "
            "or remove logger.wandb"
        ) from err


def check_wandb_requirements(opt: Dict[str, Any]) -> None:
    """Fail at start-up (before any data is read) when W&B is asked for and missing."""
    if wandb_settings(opt) is not None:
        import_wandb()


class WandbLogger(NullTensorBoardLogger):
    """Scalars and images to one W&B run (rank 0 only, as TensorBoard).

    Args:
        opt: the training options (``name``, ``logger.wandb``); they become the run's config.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        settings = wandb_settings(opt)
        if settings is None:
            raise ValueError("logger.wandb.project: required for the W&B logger")
        self._wandb = import_wandb()
        resume_id = settings.get("resume_id")
        config = {k: v for k, v in opt.items() if k not in ("opt_path",)}
        self._run = self._wandb.init(
            project=settings["project"],
            entity=settings.get("entity"),
            name=opt.get("name"),
            id=resume_id or None,
            resume="allow" if resume_id else None,
            config=config,
        )
        self.log_dir = getattr(self._run, "dir", None)

    @property
    def run_id(self) -> str:
        """The run's id (give it as ``logger.wandb.resume_id`` to continue this run)."""
        return str(self._run.id)

    def add_scalars(self, values: Dict[str, float], step: int, prefix: str = "") -> None:
        """One entry per value, keyed ``{prefix}{key}``, at ``step``."""
        self._run.log({f"{prefix}{k}": float(v) for k, v in values.items()}, step=step)

    def add_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """``image``: (H, W, 3) RGB uint8."""
        self._run.log({tag: self._wandb.Image(image)}, step=step)

    def close(self) -> None:
        self._run.finish()


__all__ = [
    "WandbLogger",
    "WandbUnavailable",
    "check_wandb_requirements",
    "import_wandb",
    "wandb_settings",
]
