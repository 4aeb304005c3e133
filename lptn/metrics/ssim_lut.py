"""SSIM as the MATLAB evaluation of the FiveK LUT papers computes it (``ssim.m`` of Wang's
2009 "SSIM with automatic downsampling", called by 3D-LUT's ``average_psnr_ssim.m`` on two
H x W x 3 uint8 images and reused by AdaInt, SepLUT and others).

What that script does to a colour image, step by step:

1. ``[M, N] = size(img)`` on an H x W x 3 array gives ``M = H`` and ``N = 3 W``: MATLAB folds the
   trailing dimensions into the last one, so the factor is
   ``f = max(1, round(min(H, 3 W) / 256))`` (MATLAB rounds halves away from zero).
2. When ``f > 1``: every channel is filtered with the ``f x f`` box ``ones(f) / f^2`` by
   ``imfilter(..., 'symmetric', 'same')`` (mirror padding that repeats the edge pixel; for an
   even ``f`` the kernel's centre is its tap ``floor((f + 1) / 2)``, so it reaches one pixel
   further down/right than up/left), then ``img(1:f:end, 1:f:end)`` indexes the 3-D array with
   two subscripts: the channels are read as the H x 3W image [R | G | B] side by side, and the
   column phase runs on across the seams (G starts at column ``W`` of the fold, not at a
   multiple of ``f`` when ``W`` is not one).
3. SSIM of Wang et al. 2004 on that 2-D image: 11 x 11 Gaussian window, sigma 1.5, K = (0.01,
   0.03), L = 255, ``filter2(..., 'valid')``, and the mean of the map. Windows near the seams
   mix two channels, as in MATLAB.

With ``f = 1`` ``ssim.m`` would hand the 3-D array itself to ``filter2``, which takes 2-D
input only; the LUT papers' 480p images always give ``f >= 2``. Here ``f = 1`` measures the same
H x 3W fold without the box filter, the continuation of the steps above.
"""

from __future__ import annotations

import math

import numpy as np

from lptn.metrics import METRIC_REGISTRY
from lptn.metrics.psnr_ssim import (
    SSIM_WINDOW,
    _gaussian_filter_valid,
    _prepare_pair,
    gaussian_window_1d,
    ssim_map_from_moments,
)

# ssim.m's automatic downsampling aims at a shorter side of about this many pixels.
DOWNSAMPLE_TARGET = 256


def downsampling_factor(height: int, folded_width: int) -> int:
    """``max(1, round(min(M, N) / 256))`` with MATLAB's round (halves away from zero)."""
    return max(1, math.floor(min(height, folded_width) / DOWNSAMPLE_TARGET + 0.5))


def box_filter_symmetric(channel: np.ndarray, f: int) -> np.ndarray:
    """``imfilter(channel, ones(f) / f^2, 'symmetric', 'same')`` of an (H, W) float64 array.

    The kernel's anchor is tap ``floor((f + 1) / 2)`` (1-based, MATLAB's centre), so the
    window covers ``floor((f - 1) / 2)`` pixels before the output pixel and the rest after it.
    """
    before = (f - 1) // 2
    after = f - 1 - before
    padded = np.pad(channel, ((before, after), (before, after)), mode="symmetric")
    height, width = channel.shape
    rows = np.zeros((height, padded.shape[1]))
    for i in range(f):
        rows += padded[i : i + height]
    out = np.zeros((height, width))
    for j in range(f):
        out += rows[:, j : j + width]
    return out / float(f * f)


def fold_channels(img: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, C W): the channels side by side, as MATLAB's 2-subscript view."""
    return np.concatenate([img[..., c] for c in range(img.shape[2])], axis=1)


@METRIC_REGISTRY.register
def calculate_ssim_lut(
    img: np.ndarray,
    img2: np.ndarray,
    crop_border: int = 0,
    input_order: str = "HWC",
) -> float:
    """SSIM with ``ssim.m``'s automatic downsampling on the folded [R | G | B] image.

    Args:
        img: image in [0, 255] (uint8, or float already quantised), (H, W, C) or
            (C, H, W) per ``input_order``, or (H, W).
        img2: the reference, same shape and range as ``img``.
        input_order: ``"HWC"`` or ``"CHW"``, the axis order of 3-D images.
        crop_border: pixels removed from each side before anything else.

    Returns:
        the mean of the SSIM map, in (-1, 1]; 1 for identical images.
    """
    a, b = _prepare_pair(img, img2, crop_border, input_order, test_y_channel=False)
    f = downsampling_factor(a.shape[0], a.shape[1] * a.shape[2])
    if f > 1:
        a = np.stack([box_filter_symmetric(a[..., c], f) for c in range(a.shape[2])], axis=-1)
        b = np.stack([box_filter_symmetric(b[..., c], f) for c in range(b.shape[2])], axis=-1)
    a = fold_channels(a)[::f, ::f]
    b = fold_channels(b)[::f, ::f]
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after downsampling, got "
            f"{a.shape[0]}x{a.shape[1]}"
        )
    moments = _gaussian_filter_valid(
        np.stack([a, b, a * a, b * b, a * b], axis=-1), gaussian_window_1d()
    )
    ssim_map = ssim_map_from_moments(*np.moveaxis(moments, -1, 0))
    return float(np.mean(ssim_map, dtype=np.float64))
