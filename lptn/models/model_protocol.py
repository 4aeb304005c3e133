"""What the runners need from a model: the interface ``build_model``'s classes provide.

The engine never names a model class: ``test.py``, ``test_speed.py`` and validation only call
``enhance`` (:class:`EnhancementModel`); the training loop also drives the optimisation step
and the checkpoints (:class:`TrainableModel`). A new ``model_type`` fits the runners when it
has these methods; it need not inherit from anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from lptn.models.lptn_model import StepResult


@runtime_checkable
class EnhancementModel(Protocol):
    """A model that enhances batches of photos (inference, evaluation, validation)."""

    def enhance(self, lq: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] on any device -> (N, 3, H, W) float32 on the model's
        device, not clamped."""
        ...


@runtime_checkable
class TrainableModel(EnhancementModel, Protocol):
    """A model the training loop can train, validate, checkpoint and resume."""

    #: the generator (possibly wrapped for distribution or compilation)
    net_g: nn.Module
    #: optimiser and learning-rate schedule per network name (``net_g``, ``net_d``)
    optimizers: Dict[str, Any]
    schedulers: Dict[str, Any]

    def networks(self) -> Dict[str, nn.Module]:
        """The trained networks by name (``net_g`` and, with a critic, ``net_d``)."""
        ...

    def describe(self) -> str:
        """A few lines naming the networks and their sizes, for the log."""
        ...

    def feed_data(self, batch: Dict[str, Any]) -> None:
        """Take one training batch (``lq`` and ``gt`` or ``ref`` tensors) for the next step."""
        ...

    def optimize_parameters(self, current_iter: int) -> StepResult:
        """One optimisation step on the fed batch; its losses and what was skipped."""
        ...

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """Set the learning rates of iteration ``current_iter``."""
        ...

    def get_current_learning_rate(self) -> Dict[str, float]:
        """``{'lr_g': ..., 'lr_d': ...}``, for the log."""
        ...

    def save_networks(self, models_dir: str | Path, label: str | int) -> List[Path]:
        """Write each network's weights as ``{name}_{label}.pth``; returns the paths."""
        ...

    def save_network(self, name: str, path: str | Path) -> None:
        """Write one network's file (``net_g``: also its moving average, with EMA), as
        :meth:`save_networks` does; ``net_g_best.pth`` is written this way."""
        ...

    def load_networks(self, models_dir: str | Path, label: str | int) -> None:
        """Load the weights :meth:`save_networks` wrote under ``label``."""
        ...

    def state_dict(self) -> Dict[str, Any]:
        """Optimiser, schedule and loss-scaler states, for a resumable training state."""
        ...

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        ...


__all__ = ["EnhancementModel", "TrainableModel"]
