"""Learning-rate schedules as closed-form functions of the iteration (``train.scheduler``).

A schedule here holds no running state: the learning rate of iteration ``it`` (1-based, the
``it``-th optimiser step) is computed from ``it`` alone, so resuming at any iteration gives the
same values as an uninterrupted run, whatever happened before.

Conventions (those of BasicSR, which trained the released LPTN):

- ``MultiStepLR``: ``lr(it) = base_lr * gamma ** (number of milestones m with m < it)``, i.e. a
  milestone ``m`` counts *completed* iterations: iterations 1..m use the old rate, iteration
  ``m + 1`` the new one.
- ``CosineAnnealingRestartLR``: ``periods`` (iterations per cycle), ``restart_weights`` (peak of
  each cycle relative to ``base_lr``) and ``eta_min``; within cycle ``k`` starting after ``c``
  completed iterations, ``lr(it) = eta_min + w_k * (base_lr - eta_min) / 2 *
  (1 + cos(pi * (it - 1 - c) / period_k))``.
- ``warmup_iter`` (``train.warmup_iter``, ``-1`` or ``0`` for none): for ``it < warmup_iter`` the
  rate is ``base_lr * it / warmup_iter`` (linear from ``base_lr / warmup_iter``); from
  ``warmup_iter`` on the schedule above applies.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Sequence

from torch.optim import Optimizer

from lptn.platform.number_check import real_number, whole_number
from lptn.registry import Registry

SCHEDULER_REGISTRY = Registry("scheduler")


def _positive_ints(values: Any, key_path: str, *, increasing: bool) -> List[int]:
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{key_path}: expected a non-empty list of iterations, got {values!r}")
    out = [whole_number(value, f"{key_path}[{i}]", 1) for i, value in enumerate(values)]
    if increasing and any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{key_path}: must be strictly increasing, got {out}")
    return out


class IterationSchedule:
    """Base class: ``factor(it)`` scales each parameter group's base learning rate.

    Args:
        optimizer: whose parameter groups are driven; their ``lr`` at construction time is
            taken as the base rate (stored as ``initial_lr`` in each group).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: List[float] = [float(g["initial_lr"]) for g in optimizer.param_groups]

    def lr_at(self, base_lr: float, it: int) -> float:
        """Scheduled rate of iteration ``it`` (>= 1) for a group whose base rate is ``base_lr``."""
        raise NotImplementedError

    def learning_rates(self, it: int, warmup_iter: int = -1) -> List[float]:
        """Rates of every parameter group at iteration ``it``, warm-up included."""
        if it < 1:
            raise ValueError(f"iterations count from 1, got {it}")
        if warmup_iter > 0 and it < warmup_iter:
            return [base * it / warmup_iter for base in self.base_lrs]
        return [self.lr_at(base, it) for base in self.base_lrs]

    def apply(self, it: int, warmup_iter: int = -1) -> List[float]:
        """Write the rates of iteration ``it`` into the optimiser; returns them."""
        lrs = self.learning_rates(it, warmup_iter)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        return lrs

    def state_dict(self) -> Dict[str, Any]:
        """Only the base rates: everything else follows from the options and the iteration."""
        return {"base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        base_lrs = [float(v) for v in state["base_lrs"]]
        if len(base_lrs) != len(self.base_lrs):
            raise ValueError(
                f"scheduler state has {len(base_lrs)} parameter groups, the "
                f"optimiser has {len(self.base_lrs)}"
            )
        self.base_lrs = base_lrs
        for group, base in zip(self.optimizer.param_groups, base_lrs):
            group["initial_lr"] = base


@SCHEDULER_REGISTRY.register
class MultiStepLR(IterationSchedule):
    """Step decay by ``gamma`` after each milestone (see the module docstring)."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.milestones = _positive_ints(milestones, "train.scheduler.milestones", increasing=True)
        self.gamma = real_number(gamma, "train.scheduler.gamma", 0, low_open=True)

    def lr_at(self, base_lr: float, it: int) -> float:
        passed = bisect.bisect_left(self.milestones, it)  # milestones m < it
        return base_lr * self.gamma**passed


@SCHEDULER_REGISTRY.register
class CosineAnnealingRestartLR(IterationSchedule):
    """Cosine annealing with restarts (see the module docstring); after the last period the
    rate stays at ``eta_min``."""

    def __init__(
        self,
        optimizer: Optimizer,
        periods: Sequence[int],
        restart_weights: Sequence[float] = (1.0,),
        eta_min: float = 0.0,
    ) -> None:
        super().__init__(optimizer)
        self.periods = _positive_ints(periods, "train.scheduler.periods", increasing=False)
        weights = list(restart_weights)
        if len(weights) != len(self.periods):
            raise ValueError(
                f"train.scheduler.restart_weights: needs one weight per period "
                f"({len(self.periods)}), got {weights}"
            )
        self.restart_weights = [float(w) for w in weights]
        self.eta_min = float(eta_min)
        self.cumulative = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]

    def lr_at(self, base_lr: float, it: int) -> float:
        done = it - 1  # completed iterations
        cycle = bisect.bisect_right(self.cumulative, done)
        if cycle >= len(self.periods):
            return self.eta_min
        start = self.cumulative[cycle] - self.periods[cycle]
        progress = (done - start) / self.periods[cycle]
        weight = self.restart_weights[cycle]
        return self.eta_min + weight * 0.5 * (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * progress)
        )


def build_scheduler(
    optimizer: Optimizer, opt: Dict[str, Any], key_path: str = "train.scheduler"
) -> IterationSchedule:
    """Schedule from its option block, e.g. ``{'type': 'MultiStepLR', 'milestones': [...],
    'gamma': 0.5}``; an unknown type names ``key_path`` and lists the known ones."""
    if not isinstance(opt, dict) or "type" not in opt:
        raise KeyError(
            f"{key_path}: needs a 'type' key (one of "
            f"{', '.join(SCHEDULER_REGISTRY.names())}), got {opt!r}"
        )
    cls = SCHEDULER_REGISTRY.get(opt["type"], f"{key_path}.type")
    kwargs = {k: v for k, v in opt.items() if k != "type"}
    try:
        return cls(optimizer, **kwargs)
    except TypeError as err:
        raise TypeError(f"{key_path} ({opt['type']}): {err}") from err


__all__ = [
    "SCHEDULER_REGISTRY",
    "IterationSchedule",
    "MultiStepLR",
    "CosineAnnealingRestartLR",
    "build_scheduler",
]
