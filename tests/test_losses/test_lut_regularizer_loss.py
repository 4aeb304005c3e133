"""The 3D-LUT smoothness and monotonicity regularisers against hand computations."""

from __future__ import annotations

import pytest
import torch

from lptn.archs.lut3d_arch import identity_lut
from lptn.losses import build_loss
from lptn.losses.lut_regularizer_loss import LUTMonotonicityLoss, LUTSmoothnessLoss


def _two_point_lut() -> torch.Tensor:
    """(1, 3, 2, 2, 2): channel 0 falls by 1 along red, channel 1 rises by 2 along green,
    channel 2 is constant 0.5."""
    lut = torch.zeros(1, 3, 2, 2, 2)
    lut[0, 0, :, :, 0], lut[0, 0, :, :, 1] = 1.0, 0.0
    lut[0, 1, :, 0, :], lut[0, 1, :, 1, :] = 0.0, 2.0
    lut[0, 2] = 0.5
    return lut


def test_smoothness_by_hand() -> None:
    lut = _two_point_lut()
    # Along red: differences (3 channels x 2 x 2 x 1 = 12 values) are 1 for channel 0 (4 of
    # them): mean(d^2) = 4 / 12. Along green: -2 for channel 1 (4 values): 16 / 12. Blue: 0.
    tv = 4 / 12 + 16 / 12
    weights = torch.tensor([[1.0, 2.0], [3.0, 0.0]])  # mean(w^2) = 14 / 4
    loss = LUTSmoothnessLoss(loss_weight=0.5)
    assert loss(lut, weights).item() == pytest.approx(0.5 * (tv + 3.5))
    assert loss(lut).item() == pytest.approx(0.5 * tv)
    # Two bases: summed.
    assert loss(torch.cat([lut, lut])).item() == pytest.approx(0.5 * 2 * tv)


def test_monotonicity_by_hand() -> None:
    lut = _two_point_lut()
    # Only channel 0 falls (along red, by 1 in 4 of the 12 differences): 4 / 12.
    assert LUTMonotonicityLoss(loss_weight=3).forward(lut).item() == pytest.approx(3 * 4 / 12)


def test_identity_and_constant_luts() -> None:
    size = 33
    bases = torch.stack([identity_lut(size), torch.zeros(3, size, size, size)])
    assert LUTMonotonicityLoss()(bases).item() == 0.0
    # Zero bases are perfectly smooth; the identity's TV is its constant slope: along each axis a
    # third of the differences are -1/(S-1).
    assert LUTSmoothnessLoss()(bases[1:]).item() == 0.0
    expected = 1e-4 * 3 * (1 / 3) / (size - 1) ** 2
    assert LUTSmoothnessLoss()(bases).item() == pytest.approx(expected, rel=1e-5)


def test_paper_weights_are_the_defaults_and_registry_builds_them() -> None:
    assert build_loss({"type": "LUTSmoothnessLoss"}).loss_weight == 1e-4
    assert build_loss({"type": "LUTMonotonicityLoss"}).loss_weight == 10.0


def test_gradient_flows_to_the_luts() -> None:
    lut = _two_point_lut().requires_grad_(True)
    (LUTSmoothnessLoss()(lut) + LUTMonotonicityLoss()(lut)).backward()
    assert lut.grad is not None and lut.grad[0, 0].abs().sum() > 0


def test_bad_lut_shape_is_named() -> None:
    with pytest.raises(
        ValueError, match=r"LUTMonotonicityLoss: basis LUTs must be \(N, 3, S, S, S\)"
    ):
        LUTMonotonicityLoss()(torch.zeros(3, 4, 4, 4))
