"""Pixel losses against hand-computed values, every reduction, weights and option errors."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lptn.losses import LOSS_REGISTRY, build_loss
from lptn.losses.pixel_loss import CharbonnierLoss, L1Loss, MSELoss

# diff = pred - target = [1, -2, 0, 0.5]
PRED = torch.tensor([[[[1.0, 0.0], [3.0, 4.5]]]])
TARGET = torch.tensor([[[[0.0, 2.0], [3.0, 4.0]]]])


@pytest.mark.parametrize(
    "cls, elementwise",
    [
        (MSELoss, [1.0, 4.0, 0.0, 0.25]),
        (L1Loss, [1.0, 2.0, 0.0, 0.5]),
        (CharbonnierLoss, [1.0, 2.0, 1e-6, 0.5]),  # sqrt(d^2 + 1e-12); at d = 0 that is 1e-6
    ],
)
def test_values_for_each_reduction(cls, elementwise):
    expected = torch.tensor(elementwise).reshape(1, 1, 2, 2)
    none = cls(loss_weight=2.0, reduction="none")(PRED, TARGET)
    assert none.shape == PRED.shape
    torch.testing.assert_close(none, 2.0 * expected)
    assert cls(reduction="sum")(PRED, TARGET).item() == pytest.approx(sum(elementwise))
    assert cls(loss_weight=3, reduction="mean")(PRED, TARGET).item() == pytest.approx(
        3 * sum(elementwise) / 4
    )


def test_charbonnier_eps_under_the_square_root():
    loss = CharbonnierLoss(eps=0.25, reduction="none")(PRED, TARGET).flatten().tolist()
    assert loss == pytest.approx([math.sqrt(1.25), math.sqrt(4.25), 0.5, math.sqrt(0.5)])


def test_weight_mask_and_weighted_mean():
    weight = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]]]])
    # MSE elementwise [1, 4, 0, 0.25] times weight -> [1, 0, 0, 0.25]
    assert MSELoss(reduction="sum")(PRED, TARGET, weight).item() == pytest.approx(1.25)
    assert MSELoss(reduction="mean")(PRED, TARGET, weight).item() == pytest.approx(1.25 / 4)
    torch.testing.assert_close(
        MSELoss(reduction="none")(PRED, TARGET, weight), torch.tensor([[[[1.0, 0.0], [0.0, 0.25]]]])
    )


def test_single_channel_weight_broadcasts_over_channels():
    pred = torch.cat([PRED, 2 * PRED], dim=1)  # (1, 2, 2, 2)
    target = torch.cat([TARGET, 2 * TARGET], dim=1)
    weight = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # L1 channel 0: [1, 2, 0, 0.5], channel 1: [2, 4, 0, 1]; kept: 1 + 2 + 2 + 4 over 4 weights
    assert L1Loss()(pred, target, weight).item() == pytest.approx(9.0 / 4)


def test_all_zero_weight_gives_zero_not_nan():
    loss = L1Loss()(PRED, TARGET, torch.zeros_like(PRED))
    assert loss.item() == 0.0


def test_mse_gradient_matches_closed_form(device):
    pred = PRED.to(device).requires_grad_(True)
    MSELoss(loss_weight=10.0)(pred, TARGET.to(device)).backward()
    torch.testing.assert_close(pred.grad.cpu(), 10.0 * 2 * (PRED - TARGET) / PRED.numel())


def test_charbonnier_gradient_is_finite_at_zero_error():
    pred = TARGET.clone().requires_grad_(True)
    CharbonnierLoss()(pred, TARGET).backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.count_nonzero(pred.grad) == 0


def test_bfloat16_inputs_are_reduced_in_float32():
    torch.manual_seed(0)
    pred = torch.rand(2, 3, 64, 64)
    target = torch.rand(2, 3, 64, 64)
    pred_bf16 = pred.bfloat16().requires_grad_(True)
    loss = MSELoss()(pred_bf16, target.bfloat16())
    assert loss.dtype == torch.float32
    reference = ((pred.bfloat16().double() - target.bfloat16().double()) ** 2).mean()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    loss.backward()
    assert pred_bf16.grad.dtype == torch.bfloat16


def test_mse_on_a_real_fivek_pair_equals_numpy(fivek_sample_dir: Path):
    name = sorted(p.name for p in (fivek_sample_dir / "source").glob("*.png"))[0]
    source = cv2.imread(str(fivek_sample_dir / "source" / name), cv2.IMREAD_UNCHANGED)
    target = cv2.imread(str(fivek_sample_dir / "target" / name), cv2.IMREAD_UNCHANGED)
    assert source is not None and target is not None and source.shape == target.shape
    a = source.astype(np.float64) / 255
    b = target.astype(np.float64) / 255
    to_tensor = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]  # noqa: E731
    loss = MSELoss()(to_tensor(a), to_tensor(b))
    assert loss.item() == pytest.approx(np.mean((a - b) ** 2), rel=1e-12)
    assert loss.item() > 1e-4  # the expert retouch is not the identity


def test_build_loss_from_options():
    loss = build_loss({"type": "MSELoss", "loss_weight": 1000, "reduction": "mean"}, "pixel_opt")
    assert isinstance(loss, MSELoss)
    assert loss.loss_weight == 1000.0
    assert {"MSELoss", "L1Loss", "CharbonnierLoss", "GANLoss"} <= set(LOSS_REGISTRY.names())


def test_build_loss_errors_name_the_key():
    with pytest.raises(KeyError, match="pixel_opt.type.*MSELos"):
        build_loss({"type": "MSELos"}, "pixel_opt")
    with pytest.raises(TypeError, match="pixel_opt.*MSELoss"):
        build_loss({"type": "MSELoss", "weight": 1}, "pixel_opt")


def test_invalid_options_raise_value_error():
    with pytest.raises(ValueError, match=r"'avg'.*'none', 'mean', 'sum'"):
        L1Loss(reduction="avg")
    with pytest.raises(ValueError, match="loss_weight.*'big'"):
        MSELoss(loss_weight="big")
    with pytest.raises(ValueError, match="eps"):
        CharbonnierLoss(eps=0.0)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\).*\(1, 1, 2, 1\)"):
        MSELoss()(PRED, TARGET[..., :1])
    with pytest.raises(ValueError, match="weight of shape"):
        MSELoss()(PRED, TARGET, torch.ones(3, 1, 1, 1))
