"""The numpy PSNR / SSIM against skimage, hand-computed values and the FiveK anchors."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lptn.metrics import calculate_psnr, calculate_ssim
from lptn.metrics.psnr_ssim import gaussian_window_1d, rgb_to_y


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1 if a.ndim == 3 else None,
        )
    )


def noisy_pair(rng: np.random.Generator, shape=(41, 57, 3)):
    """A smooth uint8 image of ``shape`` ((H, W) or (H, W, C)) and a noisy, brighter copy."""
    h, w = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [127 + 100 * np.sin(xx / 7.0 + c) * np.cos(yy / 5.0) for c in range(channels)], -1
    ).reshape(shape)
    img = np.clip(np.round(base), 0, 255).astype(np.uint8)
    noisy = np.clip(np.round(base + 12 + rng.normal(0, 20, base.shape)), 0, 255).astype(np.uint8)
    return img, noisy


# --- FiveK sample ----------------------------------------------------------------------------


def test_fivek_identity_anchor(fivek_uint8_pairs):
    """docs/REFERENCE.md section 6: input vs target, RGB, no crop."""
    psnrs = [calculate_psnr(src, tgt) for _, src, tgt in fivek_uint8_pairs]
    ssims = [calculate_ssim(src, tgt) for _, src, tgt in fivek_uint8_pairs]
    assert len(fivek_uint8_pairs) == 23
    assert np.mean(psnrs) == pytest.approx(18.9752, abs=5e-4)
    assert np.mean(ssims) == pytest.approx(0.8484, abs=5e-4)


def test_fivek_matches_skimage(fivek_uint8_pairs):
    for name, src, tgt in fivek_uint8_pairs[::3]:
        assert calculate_psnr(src, tgt) == pytest.approx(
            peak_signal_noise_ratio(src, tgt, data_range=255), abs=1e-9
        ), name
        assert calculate_ssim(src, tgt) == pytest.approx(skimage_ssim(src, tgt), abs=1e-9), name


def test_fivek_crop_and_y_match_skimage(fivek_uint8_pairs):
    _, src, tgt = fivek_uint8_pairs[0]
    c = 4
    src_c, tgt_c = src[c:-c, c:-c], tgt[c:-c, c:-c]
    assert calculate_psnr(src, tgt, crop_border=c) == pytest.approx(
        peak_signal_noise_ratio(src_c, tgt_c, data_range=255), abs=1e-9
    )
    assert calculate_ssim(src, tgt, crop_border=c) == pytest.approx(
        skimage_ssim(src_c, tgt_c), abs=1e-9
    )
    # skimage's rgb2ycbcr is the same BT.601 matrix, on RGB in [0, 1].
    y_src = rgb2ycbcr(src_c.astype(np.float64) / 255)[..., 0]
    y_tgt = rgb2ycbcr(tgt_c.astype(np.float64) / 255)[..., 0]
    assert calculate_psnr(src, tgt, crop_border=c, test_y_channel=True) == pytest.approx(
        peak_signal_noise_ratio(y_src, y_tgt, data_range=255), abs=1e-9
    )
    assert calculate_ssim(src, tgt, crop_border=c, test_y_channel=True) == pytest.approx(
        skimage_ssim(y_src, y_tgt), abs=1e-9
    )


# --- generated images: skimage agreement ----------------------------------------------------


@pytest.mark.parametrize("shape", [(41, 57, 3), (11, 11, 3), (30, 25, 1), (64, 48)])
def test_generated_matches_skimage(rng, shape):
    img, noisy = noisy_pair(rng, shape)
    assert calculate_psnr(img, noisy) == pytest.approx(
        peak_signal_noise_ratio(img, noisy, data_range=255), abs=1e-9
    )
    # skimage takes a single channel as a 2-D image.
    a, b = (img[..., 0], noisy[..., 0]) if shape[-1] == 1 else (img, noisy)
    assert calculate_ssim(img, noisy) == pytest.approx(skimage_ssim(a, b), abs=1e-9)


def test_float_input_equals_uint8(rng):
    img, noisy = noisy_pair(rng)
    assert calculate_psnr(img.astype(np.float32), noisy.astype(np.float64)) == pytest.approx(
        calculate_psnr(img, noisy), abs=1e-12
    )
    assert calculate_ssim(img.astype(np.float32), noisy.astype(np.float64)) == pytest.approx(
        calculate_ssim(img, noisy), abs=1e-12
    )


def test_chw_input_order(rng):
    img, noisy = noisy_pair(rng)
    chw = img.transpose(2, 0, 1), noisy.transpose(2, 0, 1)
    assert calculate_psnr(*chw, input_order="CHW", crop_border=3) == calculate_psnr(
        img, noisy, crop_border=3
    )
    assert calculate_ssim(*chw, input_order="CHW", test_y_channel=True) == calculate_ssim(
        img, noisy, test_y_channel=True
    )


# --- hand-computed values -------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 3, 10, 64])
def test_psnr_constant_offset(rng, d):
    img = rng.integers(0, 256 - d, size=(20, 30, 3)).astype(np.uint8)
    assert calculate_psnr(img, img + d) == pytest.approx(10 * math.log10(255**2 / d**2), abs=1e-12)


def test_identical_images():
    img = np.full((16, 16, 3), 77, np.uint8)
    img[3:9, 2:5] = 200
    assert calculate_psnr(img, img.copy()) == math.inf
    assert calculate_psnr(img, img.copy(), test_y_channel=True, crop_border=2) == math.inf
    assert calculate_ssim(img, img.copy()) == pytest.approx(1.0, abs=1e-15)


def test_ssim_of_flat_images():
    """Zero variance: SSIM reduces to the luminance term (2 mu1 mu2 + C1) / (mu1^2 + mu2^2 + C1)."""
    a = np.full((20, 20, 3), 100, np.uint8)
    b = np.full((20, 20, 3), 140, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 140 + c1) / (100**2 + 140**2 + c1)
    assert calculate_ssim(a, b) == pytest.approx(expected, abs=1e-12)


def test_crop_border_removes_border(rng):
    img, noisy = noisy_pair(rng)
    c = 4
    changed = noisy.copy()
    changed[:c] = 0
    changed[-c:, :, 1] = 255
    changed[:, :c, 2] = 3
    changed[:, -c:] = rng.integers(0, 256, size=changed[:, -c:].shape)
    for metric in (calculate_psnr, calculate_ssim):
        assert metric(img, changed, crop_border=c) == metric(img, noisy, crop_border=c)
        assert metric(img, changed) != metric(img, noisy)
        assert metric(img, changed, crop_border=c - 1) != metric(img, noisy, crop_border=c - 1)


# --- Y channel (BT.601, RGB order) ----------------------------------------------------------


def test_y_channel_known_values():
    px = np.array(
        [[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]],
        dtype=np.uint8,
    )
    y = rgb_to_y(px)[0, :, 0]
    expected = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966, 16 + 128 * 219 / 255]
    np.testing.assert_allclose(y, expected, atol=1e-12)
    assert y.dtype == np.float64


def test_y_channel_psnr_is_rgb_ordered():
    black = np.zeros((8, 8, 3), np.uint8)
    red, blue = black.copy(), black.copy()
    red[..., 0] = 255
    blue[..., 2] = 255
    assert calculate_psnr(black, red, test_y_channel=True) == pytest.approx(
        20 * math.log10(255 / 65.481), abs=1e-12
    )
    assert calculate_psnr(black, blue, test_y_channel=True) == pytest.approx(
        20 * math.log10(255 / 24.966), abs=1e-12
    )


def test_gaussian_window_matches_opencv():
    np.testing.assert_allclose(
        gaussian_window_1d(), cv2.getGaussianKernel(11, 1.5)[:, 0], atol=1e-15
    )


# --- errors ---------------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    a = np.zeros((10, 12, 3), np.uint8)
    b = np.zeros((12, 10, 3), np.uint8)
    for metric in (calculate_psnr, calculate_ssim):
        with pytest.raises(ValueError, match=r"\(10, 12, 3\).*\(12, 10, 3\)"):
            metric(a, b)


def test_bad_arguments():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match="crop_border 10"):
        calculate_psnr(a, a, crop_border=10)
    with pytest.raises(ValueError, match="crop_border"):
        calculate_psnr(a, a, crop_border=-1)
    with pytest.raises(ValueError, match="input_order"):
        calculate_psnr(a, a, input_order="NHWC")
    with pytest.raises(ValueError, match="11x11"):
        calculate_ssim(a, a, crop_border=5)
    with pytest.raises(ValueError, match=r"RGB.*\(20, 20, 1\)"):
        calculate_psnr(a[..., :1], a[..., :1], test_y_channel=True)
