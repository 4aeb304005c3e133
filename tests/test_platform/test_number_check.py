"""The one number check (lptn.platform.number_check) and the consumers that use it."""

from __future__ import annotations

import math

import pytest
import torch

from lptn.losses.gan_loss import GANLoss
from lptn.losses.pixel_loss import CharbonnierLoss, MSELoss
from lptn.models.lr_scheduler import MultiStepLR
from lptn.models.optimizers import build_optimizer
from lptn.platform.distributed import dist_settings
from lptn.platform.number_check import SchemaViolation, real_number, whole_number
from lptn.platform.option_schema import Integer, Number


def test_real_number_bounds_and_words() -> None:
    assert real_number(3, "x") == 3.0
    assert real_number(0.5, "x", 0, 1, high_open=True) == 0.5
    for bad, words in (
        (True, "a number"),
        ("1", "a number"),
        (math.inf, "a number"),
        (math.nan, "a number"),
    ):
        with pytest.raises(SchemaViolation, match=f"x must be {words}, got"):
            real_number(bad, "x")
    with pytest.raises(SchemaViolation, match=r"x must be a positive number, got 0"):
        real_number(0, "x", 0, low_open=True)
    with pytest.raises(SchemaViolation, match=r"x must be a number in \[0, 1\), got 1"):
        real_number(1, "x", 0, 1, high_open=True)


def test_the_schema_kinds_say_what_the_helpers_say() -> None:
    assert Number(0, None, low_open=True).describe() == "a positive number"
    assert Integer(1, 65535).describe() == "an integer in 1..65535"
    assert whole_number(5e3, "x", 1, 65535) == 5000
    with pytest.raises(SchemaViolation, match=r"port must be an integer in 1\.\.65535, got 70000"):
        whole_number(70000, "port", 1, 65535)


def test_every_consumer_refuses_a_bool_for_a_number() -> None:
    """`true` is a number to Python (bool is an int); to none of the option readers."""
    param = [torch.nn.Parameter(torch.zeros(1))]
    refusals = [
        (lambda: MSELoss(loss_weight=True), "loss_weight must be a number"),
        (lambda: CharbonnierLoss(eps=True), "eps must be a positive number"),
        (lambda: GANLoss("vanilla", real_label_val=True), "real_label_val must be a number"),
        (
            lambda: build_optimizer(param, {"type": "Adam", "lr": True}, "train.optim_g"),
            "train.optim_g.lr must be a positive number, got True",
        ),
        (
            lambda: MultiStepLR(torch.optim.SGD(param, lr=0.1), [2], gamma=True),
            "train.scheduler.gamma must be a positive number",
        ),
        (
            lambda: dist_settings({"dist_params": {"timeout_min": True}}),
            "dist_params.timeout_min must be a positive number",
        ),
        (
            lambda: dist_settings({"dist_params": {"port": True}}),
            r"dist_params.port must be an integer in 1\.\.65535",
        ),
    ]
    for build, message in refusals:
        with pytest.raises(ValueError, match=message):
            build()
