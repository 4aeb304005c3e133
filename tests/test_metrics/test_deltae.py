"""calculate_deltae against plain transcriptions of sRGB -> CIELAB, CIE76 and CIEDE2000."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lptn.engine.validation import metric_is_better
from lptn.metrics import METRIC_REGISTRY, calculate_deltae, calculate_metric, metric_direction


def reference_lab(rgb_uint8: np.ndarray) -> np.ndarray:
    """sRGB (8 bit) -> linear RGB -> XYZ -> CIELAB under D65 (2-degree observer), by hand."""
    c = rgb_uint8.astype(np.float64) / 255.0
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    to_xyz = np.array(
        [
            [0.412453, 0.357580, 0.180423],
            [0.212671, 0.715160, 0.072169],
            [0.019334, 0.119193, 0.950227],
        ]
    )
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    t = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lightness = 116.0 * t[..., 1] - 16.0
    a = 500.0 * (t[..., 0] - t[..., 1])
    b = 200.0 * (t[..., 1] - t[..., 2])
    return np.stack([lightness, a, b], axis=-1)


def reference_ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 (kL = kC = kH = 1) as written in Sharma, Wu and Dalal (2005), eqs. 1-22."""
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    h1p = np.where((a1p == 0) & (b1 == 0), 0.0, h1p)
    h2p = np.where((a2p == 0) & (b2 == 0), 0.0, h2p)
    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dh_big = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(
        np.abs(h1p - h2p) <= 180,
        h_sum / 2,
        np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2),
    )
    h_mean = np.where(c1p * c2p == 0, h_sum, h_mean)
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt(
        (dl / s_l) ** 2 + (dc / s_c) ** 2 + (dh_big / s_h) ** 2 + r_t * (dc / s_c) * (dh_big / s_h)
    )


def test_reference_ciede2000_matches_sharmas_published_pairs() -> None:
    # Pairs 1, 7, 17 and 18 of the test data in Sharma et al. (2005), Table 1.
    lab1 = np.array([[50, 2.6772, -79.7751], [50, 0, 0], [50, 2.5, 0], [50, 2.5, 0]])
    lab2 = np.array([[50, 0, -82.7485], [50, -1, 2], [73, 25, -18], [61, -5, 29]])
    expected = [2.0425, 2.3669, 27.1492, 22.8977]
    np.testing.assert_allclose(reference_ciede2000(lab1, lab2), expected, atol=1e-4)


def test_deltae_cie76_on_the_fivek_sample_matches_the_plain_reference(fivek_uint8_pairs) -> None:
    for name, source, target in fivek_uint8_pairs:
        expected = np.mean(np.linalg.norm(reference_lab(source) - reference_lab(target), axis=-1))
        got = calculate_deltae(source, target)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), name
        assert 1.0 < got < 60.0, name  # an ordinary retouch, in Lab units


def test_deltae_ciede2000_on_the_fivek_sample_matches_the_plain_reference(
    fivek_uint8_pairs,
) -> None:
    for name, source, target in fivek_uint8_pairs[:6]:
        expected = np.mean(reference_ciede2000(reference_lab(source), reference_lab(target)))
        got = calculate_deltae(source, target, formula="ciede2000")
        assert got == pytest.approx(expected, rel=1e-7), name
        # CIEDE2000 compresses large chroma differences: below CIE76 on real photos.
        assert got < calculate_deltae(source, target), name


def test_deltae_options_crop_chw_float_and_errors(fivek_uint8_pairs) -> None:
    _, source, target = fivek_uint8_pairs[0]
    crop = 8
    cropped = calculate_deltae(source[crop:-crop, crop:-crop], target[crop:-crop, crop:-crop])
    assert calculate_deltae(source, target, crop_border=crop) == pytest.approx(cropped, rel=1e-12)
    as_float = calculate_deltae(source.astype(np.float32), target.astype(np.float32))
    assert as_float == pytest.approx(calculate_deltae(source, target), rel=1e-9)
    chw = calculate_deltae(source.transpose(2, 0, 1), target.transpose(2, 0, 1), input_order="CHW")
    assert chw == pytest.approx(calculate_deltae(source, target), rel=1e-12)
    assert calculate_deltae(source, source) == 0.0
    with pytest.raises(ValueError, match="formula"):
        calculate_deltae(source, target, formula="cie94")
    with pytest.raises(ValueError, match="3 channels"):
        calculate_deltae(source[..., 0], target[..., 0])


def test_deltae_from_an_option_block_is_lower_is_better(fivek_uint8_pairs) -> None:
    _, source, target = fivek_uint8_pairs[0]
    block = {"type": "calculate_deltae", "formula": "ciede2000", "crop_border": 0}
    assert METRIC_REGISTRY.get("calculate_deltae") is calculate_deltae
    value = calculate_metric({"img": source, "img2": target}, block)
    assert value == calculate_deltae(source, target, formula="ciede2000")
    assert metric_direction(block) == "lower"
    assert metric_direction({"type": "calculate_psnr"}) == "higher"
    # The block's own key still wins over the metric's declaration.
    assert metric_direction({**block, "better": "higher"}) == "higher"
    assert metric_is_better(block, 3.0, 4.0) and not metric_is_better(block, 5.0, 4.0)
    assert not metric_is_better(block, math.nan, None)
