"""PSNR and SSIM on numpy images (docs/REFERENCE.md section 5, BasicSR conventions).

Inputs are RGB images with values in [0, 255]: uint8, or float arrays that were already
quantised as ``round(clip(x, 0, 1) * 255)``. All arithmetic is float64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple, TypeVar

import numpy as np

from lptn.metrics import METRIC_REGISTRY
from lptn.platform.option_schema import whole_number

if TYPE_CHECKING:
    import torch

# numpy arrays or torch tensors (the batched metrics share the SSIM formula); torch is only
# named for the type checker, so this module does not import it.
ArrayT = TypeVar("ArrayT", "np.ndarray", "torch.Tensor")

PIXEL_MAX = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# ITU-R BT.601 luma for [0, 255] RGB, as BasicSR's bgr2ycbcr(y_only=True) (which receives BGR
# and therefore lists the same weights in reverse order).
Y_WEIGHTS_RGB = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps, shape (size,), float64; their outer product is the window."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return taps / taps.sum()


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of an (H, W, 3) RGB image in [0, 255]; returns (H, W, 1) float64 in [16, 235].

    Not rounded, matching BasicSR's ``to_y_channel``.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"test_y_channel needs (H, W, 3) RGB images, got shape {img.shape}")
    rgb = img.astype(np.float64, copy=False)
    luma = rgb @ np.asarray(Y_WEIGHTS_RGB, dtype=np.float64) / PIXEL_MAX + Y_OFFSET
    return luma[..., None]


def _prepare_pair(
    img: np.ndarray, img2: np.ndarray, crop_border: int, input_order: str, test_y_channel: bool
) -> Tuple[np.ndarray, np.ndarray]:
    """Validate, bring both images to float64 (H, W, C), crop the border, optionally take Y."""
    img = np.asarray(img)
    img2 = np.asarray(img2)
    if img.shape != img2.shape:
        raise ValueError(f"image shapes differ: img {img.shape} vs img2 {img2.shape}")
    if input_order not in ("HWC", "CHW"):
        raise ValueError(f"input_order must be 'HWC' or 'CHW', got {input_order!r}")
    if img.ndim == 2:
        img, img2 = img[..., None], img2[..., None]
    elif img.ndim == 3:
        if input_order == "CHW":
            img, img2 = img.transpose(1, 2, 0), img2.transpose(1, 2, 0)
    else:
        raise ValueError(f"expected a 2-D or 3-D image, got shape {img.shape}")
    crop_border = whole_number(crop_border, "crop_border", 0)
    height, width = img.shape[:2]
    if 2 * crop_border >= min(height, width):
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {height}x{width} image")

    img = img.astype(np.float64, copy=False)
    img2 = img2.astype(np.float64, copy=False)
    if crop_border:
        window = (slice(crop_border, -crop_border), slice(crop_border, -crop_border))
        img, img2 = img[window], img2[window]
    if test_y_channel:
        img, img2 = rgb_to_y(img), rgb_to_y(img2)
    return img, img2


@METRIC_REGISTRY.register
def calculate_psnr(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
    test_y_channel: bool = False,
) -> float:
    """PSNR in dB, ``10 log10(255^2 / MSE)``; identical images give ``inf``.

    Args:
        img: image in [0, 255], (H, W, C) or (C, H, W) per ``input_order``, or (H, W).
            RGB channel order when ``test_y_channel`` is set.
        img2: the reference, same shape and range as ``img``.
        input_order: ``"HWC"`` or ``"CHW"``, the axis order of 3-D images.
        crop_border: pixels removed from each side before measuring.
        test_y_channel: measure the BT.601 luma only.
    """
    a, b = _prepare_pair(img, img2, crop_border, input_order, test_y_channel)
    mse = float(np.mean((a - b) ** 2, dtype=np.float64))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(PIXEL_MAX**2 / mse))


def _gaussian_filter_valid(maps: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable Gaussian correlation over axes 0 and 1, keeping only the valid region.

    ``maps`` (H, W, ...) -> (H - k + 1, W - k + 1, ...) with k = len(taps).
    """
    k = taps.size
    out_h = maps.shape[0] - k + 1
    rows = sum(taps[i] * maps[i : i + out_h] for i in range(k))
    out_w = maps.shape[1] - k + 1
    return sum(taps[i] * rows[:, i : i + out_w] for i in range(k))


def _ssim_per_channel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean SSIM of each channel of two (H, W, C) float64 images in [0, 255]; shape (C,)."""
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels "
            f"after cropping, got {a.shape[0]}x{a.shape[1]}"
        )
    taps = gaussian_window_1d()
    # One filtering pass over the five moment maps, stacked on a trailing axis.
    moments = _gaussian_filter_valid(np.stack([a, b, a * a, b * b, a * b], axis=-1), taps)
    ssim_map = ssim_map_from_moments(*np.moveaxis(moments, -1, 0))
    return ssim_map.mean(axis=(0, 1), dtype=np.float64)


def ssim_map_from_moments(
    mu_a: ArrayT, mu_b: ArrayT, e_aa: ArrayT, e_bb: ArrayT, e_ab: ArrayT
) -> ArrayT:
    """The SSIM map from Gaussian-weighted local moments (E[a], E[b], E[a^2], E[b^2], E[ab]).

    Plain arithmetic, so numpy arrays and torch tensors both work; values on the [0, 255] scale.
    """
    # Population (biased) variances, as Wang et al. and skimage's use_sample_covariance=False.
    var_a = e_aa - mu_a * mu_a
    var_b = e_bb - mu_b * mu_b
    cov_ab = e_ab - mu_a * mu_b
    c1 = (SSIM_K1 * PIXEL_MAX) ** 2
    c2 = (SSIM_K2 * PIXEL_MAX) ** 2
    return (
        (2 * mu_a * mu_b + c1)
        * (2 * cov_ab + c2)
        / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    )


@METRIC_REGISTRY.register
def calculate_ssim(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
    test_y_channel: bool = False,
) -> float:
    """SSIM (Wang et al. 2004): Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, L 255.

    Computed on the valid region only, per channel, then averaged over channels; equal to
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=-1)``.
    Arguments as :func:`calculate_psnr`.
    """
    a, b = _prepare_pair(img, img2, crop_border, input_order, test_y_channel)
    return float(np.mean(_ssim_per_channel(a, b)))
