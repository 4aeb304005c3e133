"""Batched PSNR and SSIM on torch tensors, for validation during training.

Same definitions as :mod:`lptn.metrics.psnr_ssim` (docs/REFERENCE.md section 5): the (N, C, H, W)
inputs in [0, 1] are quantised to 8-bit levels first and everything is computed in float64 on
the inputs' device, so one value per image agrees with the numpy functions.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from lptn.metrics.psnr_ssim import (
    PIXEL_MAX,
    SSIM_SIGMA,
    SSIM_WINDOW,
    Y_OFFSET,
    Y_WEIGHTS_RGB,
    gaussian_window_1d,
    ssim_map_from_moments,
)


def quantise_to_levels(x: torch.Tensor) -> torch.Tensor:
    """``round(clamp(x, 0, 1) * 255)`` in float64 (exact product, so no float32 rounding)."""
    return torch.round(x.to(torch.float64).clamp(0.0, 1.0) * PIXEL_MAX)


def _prepare_batch(
    pred: torch.Tensor, target: torch.Tensor, crop_border: int, test_y_channel: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Validate, quantise, crop and optionally take BT.601 luma; returns float64 (N, C', h, w)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"tensor shapes differ: pred {tuple(pred.shape)} vs target {tuple(target.shape)}"
        )
    if pred.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) tensors, got shape {tuple(pred.shape)}")
    if isinstance(crop_border, bool) or int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    crop_border = int(crop_border)
    height, width = pred.shape[-2:]
    if 2 * crop_border >= min(height, width):
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {height}x{width} image")

    a = quantise_to_levels(pred)
    b = quantise_to_levels(target.to(pred.device))
    if crop_border:
        a = a[..., crop_border:-crop_border, crop_border:-crop_border]
        b = b[..., crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel:
        a, b = _rgb_to_y(a), _rgb_to_y(b)
    return a, b


def _rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of (N, 3, H, W) RGB in [0, 255] -> (N, 1, H, W), not rounded."""
    if x.shape[1] != 3:
        raise ValueError(f"test_y_channel needs 3-channel RGB tensors, got shape {tuple(x.shape)}")
    weights = torch.tensor(Y_WEIGHTS_RGB, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True) / PIXEL_MAX + Y_OFFSET


def psnr_torch(
    pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, test_y_channel: bool = False
) -> torch.Tensor:
    """Per-image PSNR in dB of (N, C, H, W) tensors in [0, 1]; float64 (N,), inf if equal."""
    a, b = _prepare_batch(pred, target, crop_border, test_y_channel)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    inf = torch.full_like(mse, float("inf"))
    # The clamp only keeps log10 finite on the branch torch.where discards.
    psnr = 10.0 * torch.log10(PIXEL_MAX**2 / mse.clamp_min(torch.finfo(mse.dtype).tiny))
    return torch.where(mse == 0, inf, psnr)


def _gaussian_filter_valid(x: torch.Tensor) -> torch.Tensor:
    """Depthwise separable 11x11 Gaussian (sigma 1.5) over (N, C, H, W), valid region only."""
    channels = x.shape[1]
    taps = torch.from_numpy(gaussian_window_1d(SSIM_WINDOW, SSIM_SIGMA)).to(x.device, x.dtype)
    vertical = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    horizontal = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return F.conv2d(F.conv2d(x, vertical, groups=channels), horizontal, groups=channels)


def ssim_torch(
    pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, test_y_channel: bool = False
) -> torch.Tensor:
    """Per-image SSIM of (N, C, H, W) tensors in [0, 1]; returns float64 (N,).

    Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, L 255 on the quantised [0, 255] values, valid
    region only, averaged per channel then over channels.
    """
    a, b = _prepare_batch(pred, target, crop_border, test_y_channel)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels "
            f"after cropping, got {a.shape[-2]}x{a.shape[-1]}"
        )
    channels = a.shape[1]
    # One depthwise pass over the five moment maps, stacked along the channel axis.
    moments = _gaussian_filter_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1))
    ssim_map = ssim_map_from_moments(*moments.split(channels, dim=1))
    # Every channel covers the same area, so the mean over (C, h, w) is the mean of channel means.
    return ssim_map.flatten(1).mean(dim=1)
