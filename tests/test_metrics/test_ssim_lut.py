"""calculate_ssim_lut against a plain, loop-based transcription of MATLAB's ssim.m steps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from lptn.metrics import calculate_metric, calculate_ssim, calculate_ssim_lut
from lptn.metrics.ssim_lut import downsampling_factor


def _matlab_round_half_away(x: float) -> int:
    whole = int(x)
    return whole + 1 if x - whole >= 0.5 else whole


def _mirror(p: int, n: int) -> int:
    """MATLAB's 'symmetric' padding for a 0-based index: -1 -> 0, n -> n - 1."""
    if p < 0:
        return -p - 1
    if p >= n:
        return 2 * n - p - 1
    return p


def reference_ssim_matlab(img1: np.ndarray, img2: np.ndarray) -> float:
    """ssim.m with default arguments on two (H, W, 3) uint8 images, step by step."""
    x, y = img1.astype(np.float64), img2.astype(np.float64)
    m = x.shape[0]
    n = x.shape[1] * x.shape[2]  # size() folds the channels into the columns
    f = max(1, _matlab_round_half_away(min(m, n) / 256))
    if f > 1:
        centre = (f + 1) // 2  # MATLAB's 1-based centre of an f-tap kernel
        height, width = x.shape[:2]
        fx, fy = np.zeros_like(x), np.zeros_like(y)
        for u in range(1, f + 1):
            rows = [_mirror(i + u - centre, height) for i in range(height)]
            for v in range(1, f + 1):
                cols = [_mirror(j + v - centre, width) for j in range(width)]
                fx += x[np.ix_(rows, cols)] / (f * f)
                fy += y[np.ix_(rows, cols)] / (f * f)
        x, y = fx, fy
    # img(1:f:end, 1:f:end) on a 3-D array: MATLAB's column-major view as M x (W * 3).
    x = x.reshape(m, n, order="F")[::f, ::f]
    y = y.reshape(m, n, order="F")[::f, ::f]
    offsets = np.arange(11) - 5.0
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()  # fspecial('gaussian', 11, 1.5)
    out_h, out_w = x.shape[0] - 10, x.shape[1] - 10

    def filter_valid(img: np.ndarray) -> np.ndarray:  # filter2(window, img, 'valid')
        acc = np.zeros((out_h, out_w))
        for u in range(11):
            for v in range(11):
                acc += window[u, v] * img[u : u + out_h, v : v + out_w]
        return acc

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filter_valid(x), filter_valid(y)
    s11 = filter_valid(x * x) - mu1 * mu1
    s22 = filter_valid(y * y) - mu2 * mu2
    s12 = filter_valid(x * y) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / (
        (mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2)
    )
    return float(ssim_map.mean())


def test_downsampling_factor_uses_matlab_rounding() -> None:
    # min(M, 3W) / 256: 383 -> 1.496 (1), 384 -> 1.5 (2), 640 -> 2.5 (3), 896 -> 3.5 (4).
    assert downsampling_factor(383, 3 * 300) == 1
    assert downsampling_factor(384, 3 * 300) == 2
    assert downsampling_factor(1000, 3 * 128) == 2  # the folded width counts, not W
    assert downsampling_factor(640, 3000) == 3
    assert downsampling_factor(896, 3000) == 4
    assert downsampling_factor(20, 60) == 1


@pytest.mark.parametrize(
    "size, factor",
    [((37, 29), 1), ((401, 157), 2), ((651, 233), 3), ((398, 130), 2)],
    ids=["f1", "f2", "f3", "f2-even-fold"],
)
def test_ssim_lut_matches_the_loop_transcription_on_odd_sizes(
    fivek_uint8_pairs, size, factor
) -> None:
    _, source, target = fivek_uint8_pairs[2]
    height, width = size
    # Real photo content at the requested size (cv2.resize takes (width, height)).
    src = cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA)
    tgt = cv2.resize(target, (width, height), interpolation=cv2.INTER_AREA)
    assert downsampling_factor(height, 3 * width) == factor
    got = calculate_ssim_lut(src, tgt)
    assert got == pytest.approx(reference_ssim_matlab(src, tgt), abs=1e-12)
    assert 0.3 < got < 1.0
    assert calculate_ssim_lut(src, src) == pytest.approx(1.0, abs=1e-12)


def test_ssim_lut_on_the_fivek_sample(fivek_uint8_pairs) -> None:
    # One portrait (512 x 341: f = 2) and one landscape (341 x 512: f = 1) pair at full size.
    for name, source, target in (fivek_uint8_pairs[0], fivek_uint8_pairs[2]):
        got = calculate_ssim_lut(source, target)
        assert got == pytest.approx(reference_ssim_matlab(source, target), abs=1e-12), name
        # A different protocol from BasicSR's per-channel SSIM: close but not equal.
        basicsr = calculate_ssim(source, target)
        assert got != pytest.approx(basicsr, abs=1e-6) and abs(got - basicsr) < 0.1, name
    block = {"type": "calculate_ssim_lut", "crop_border": 0}
    _, source, target = fivek_uint8_pairs[0]
    assert calculate_metric({"img": source, "img2": target}, block) == calculate_ssim_lut(
        source, target
    )


def test_ssim_lut_rejects_tiny_images() -> None:
    tiny = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="11x11"):
        calculate_ssim_lut(tiny, tiny)
