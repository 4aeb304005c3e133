"""Laplacian pyramid with the 5x5 binomial kernel (docs/REFERENCE.md section 1).

This is the exact, straightforward computation the released network was trained with. All
functions take and return NCHW float tensors; values are not clamped.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def binomial_kernel(
    channels: int = 3, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The depthwise 5x5 kernel ``outer(b, b) / 256``; shape ``(channels, 1, 5, 5)``."""
    b = torch.tensor(_BINOMIAL_5, dtype=torch.float64)
    k = torch.outer(b, b) / 256.0
    return k.to(dtype=dtype, device=device).expand(channels, 1, 5, 5).contiguous()


def min_input_size(num_high: int) -> int:
    """Smallest height/width that ``num_high`` levels accept: ``2**num_high + 1``.

    Every padded map must be at least 3 pixels for reflect padding of 2.
    """
    return 2**num_high + 1


def check_input_size(height: int, width: int, num_high: int) -> None:
    """Raise ``ValueError`` when ``(height, width)`` is too small for ``num_high`` levels."""
    smallest = min_input_size(num_high)
    if height < smallest or width < smallest:
        raise ValueError(
            f"input of {height}x{width} pixels is too small for a Laplacian pyramid with "
            f"num_high={num_high}: height and width must be at least {smallest}"
        )


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 5x5 convolution after reflect padding of 2. ``x``: (N, C, H, W)."""
    channels = x.shape[1]
    # The kernel is the same for every channel, so any channel count works.
    weight = kernel[:1].to(x.dtype).expand(channels, 1, 5, 5)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(x, weight, groups=channels)


def downsample(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Blur, then keep even rows and columns: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    return blur(x, kernel)[:, :, ::2, ::2]


def upsample(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-insertion to (N, C, 2H, 2W), then blur with ``4 * kernel``."""
    n, c, h, w = x.shape
    up = x.new_zeros((n, c, 2 * h, 2 * w))
    up[:, :, ::2, ::2] = x
    return blur(up, kernel * 4)


def _match_size(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # Odd sizes: the upsampled map is one pixel larger; the reference uses nearest resizing.
    if x.shape[-2:] != like.shape[-2:]:
        x = F.interpolate(x, size=like.shape[-2:])
    return x


def pyramid_decompose(img: torch.Tensor, kernel: torch.Tensor, num_high: int) -> List[torch.Tensor]:
    """Split ``img`` (N, C, H, W) into ``[band_0 (H, W), ..., band_{L-1}, low (H/2^L)]``."""
    check_input_size(img.shape[-2], img.shape[-1], num_high)
    pyramid = []
    current = img
    for _ in range(num_high):
        down = downsample(current, kernel)
        up = _match_size(upsample(down, kernel), current)
        pyramid.append(current - up)
        current = down
    pyramid.append(current)
    return pyramid


def pyramid_reconstruct(pyramid: Sequence[torch.Tensor], kernel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pyramid_decompose`: ``pyramid`` is ordered fine to coarse, low last."""
    img = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        img = _match_size(upsample(img, kernel), band) + band
    return img


class LaplacianPyramid(nn.Module):
    """Module wrapper holding the blur kernel as a non-persistent buffer.

    The buffer follows ``.to(device, dtype)`` but is not saved in checkpoints, so the official
    file's key layout is unchanged.
    """

    kernel: torch.Tensor  # the registered buffer, declared for the type checker

    def __init__(self, num_high: int = 3, channels: int = 3) -> None:
        super().__init__()
        self.num_high = num_high
        self.register_buffer("kernel", binomial_kernel(channels), persistent=False)

    def decompose(self, img: torch.Tensor) -> List[torch.Tensor]:
        return pyramid_decompose(img, self.kernel, self.num_high)

    def reconstruct(self, pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
        return pyramid_reconstruct(pyramid, self.kernel)
