"""Learning-rate schedules: values at given iterations, warm-up, resume independence."""

from __future__ import annotations

import math

import pytest
import torch

from lptn.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepLR, build_scheduler
from lptn.models.optimizers import build_optimizer


def _optimizer(lr: float = 1e-4) -> torch.optim.Optimizer:
    return build_optimizer(
        [torch.nn.Parameter(torch.zeros(2))], {"type": "Adam", "lr": lr, "betas": [0.9, 0.99]}
    )


def test_multistep_halves_after_each_milestone() -> None:
    # The released recipe: milestones count completed iterations (BasicSR's convention).
    sched = build_scheduler(
        _optimizer(1e-4),
        {"type": "MultiStepLR", "milestones": [50000, 100000, 200000, 300000], "gamma": 0.5},
    )
    expected = {
        1: 1e-4,
        50000: 1e-4,
        50001: 5e-5,
        100000: 5e-5,
        100001: 2.5e-5,
        200001: 1.25e-5,
        300000: 1.25e-5,
        300001: 6.25e-6,
    }
    for it, lr in expected.items():
        assert sched.learning_rates(it) == [pytest.approx(lr, rel=1e-12)], it


def test_linear_warmup_then_schedule() -> None:
    opt = _optimizer(1e-3)
    sched = build_scheduler(opt, {"type": "MultiStepLR", "milestones": [20], "gamma": 0.1})
    assert sched.apply(1, warmup_iter=10) == [pytest.approx(1e-4)]
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert sched.apply(5, warmup_iter=10) == [pytest.approx(5e-4)]
    assert sched.apply(9, warmup_iter=10) == [pytest.approx(9e-4)]
    assert sched.apply(10, warmup_iter=10) == [pytest.approx(1e-3)]
    assert sched.apply(21, warmup_iter=10) == [pytest.approx(1e-4)]
    # warmup_iter -1 (the recipe's value) means none
    assert sched.apply(1, warmup_iter=-1) == [pytest.approx(1e-3)]


def test_schedule_is_a_function_of_the_iteration_only() -> None:
    """A fresh schedule asked for iteration k gives what a long-running one gives."""
    a = build_scheduler(_optimizer(), {"type": "MultiStepLR", "milestones": [3, 7], "gamma": 0.5})
    seq = [a.apply(it, 4)[0] for it in range(1, 12)]
    b = build_scheduler(_optimizer(), {"type": "MultiStepLR", "milestones": [3, 7], "gamma": 0.5})
    b.load_state_dict(a.state_dict())
    assert [b.apply(it, 4)[0] for it in range(8, 12)] == seq[7:]


def test_cosine_annealing_restarts() -> None:
    sched = CosineAnnealingRestartLR(
        _optimizer(1.0), periods=[10, 20], restart_weights=[1, 0.5], eta_min=0.0
    )
    assert sched.lr_at(1.0, 1) == pytest.approx(1.0)
    assert sched.lr_at(1.0, 6) == pytest.approx(0.5)  # half way through cycle 1
    assert sched.lr_at(1.0, 11) == pytest.approx(0.5)  # restart at weight 0.5
    assert sched.lr_at(1.0, 21) == pytest.approx(0.25)  # half way through cycle 2
    assert sched.lr_at(1.0, 31) == 0.0  # after the last period
    expected = 0.5 * (1 + math.cos(math.pi * 3 / 10))
    assert sched.lr_at(1.0, 4) == pytest.approx(expected)


def test_bad_scheduler_options_name_the_key() -> None:
    with pytest.raises(KeyError, match="train.scheduler.type"):
        build_scheduler(_optimizer(), {"type": "StepLRR", "milestones": [1]})
    with pytest.raises(ValueError, match="milestones"):
        MultiStepLR(_optimizer(), milestones=[5, 3])
    with pytest.raises(ValueError, match="restart_weights"):
        CosineAnnealingRestartLR(_optimizer(), periods=[5, 5], restart_weights=[1])


def test_optimizer_types_and_errors() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    adamw = build_optimizer(
        params, {"type": "AdamW", "lr": 2e-4, "betas": [0.5, 0.9], "weight_decay": 0.01}
    )
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["betas"] == (0.5, 0.9)
    with pytest.raises(KeyError, match="train.optim_g.type"):
        build_optimizer(params, {"type": "Adamm", "lr": 1e-4})
    with pytest.raises(ValueError, match="train.optim_g.lr"):
        build_optimizer(params, {"type": "Adam"})
