"""Laplacian pyramid (docs/REFERENCE.md section 1) against an independent numpy implementation.

The reference below is written from the spec with explicit reflect padding and shifted sums
(no convolution routine), so it shares no code path with ``lptn.archs.laplacian_pyramid``.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import pytest
import torch

from lptn.archs.laplacian_pyramid import (
    LaplacianPyramid,
    binomial_kernel,
    blur,
    check_input_size,
    downsample,
    min_input_size,
    pyramid_decompose,
    pyramid_reconstruct,
    upsample,
)

_B = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
REF_KERNEL = np.outer(_B, _B) / 256.0

# Round-trip tolerance per dtype (docs/REFERENCE.md: lossless up to float rounding).
ROUNDTRIP_ATOL = {torch.float64: 1e-12, torch.float32: 1e-5}
# Constant-image tolerance for the device/dtype fixtures.
CONST_ATOL = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}


# ---------------------------------------------------------------- independent numpy reference
def ref_blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(C, H, W) float64 -> same: reflect padding of 2, then 5x5 weighted sum of shifts."""
    h, w = img.shape[-2:]
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2)), mode="reflect")
    out = np.zeros_like(img)
    for dy in range(5):
        for dx in range(5):
            out += kernel[dy, dx] * padded[:, dy : dy + h, dx : dx + w]
    return out


def ref_down(img: np.ndarray) -> np.ndarray:
    return ref_blur(img, REF_KERNEL)[:, ::2, ::2]


def ref_up(img: np.ndarray) -> np.ndarray:
    c, h, w = img.shape
    zeros = np.zeros((c, 2 * h, 2 * w))
    zeros[:, ::2, ::2] = img
    return ref_blur(zeros, 4 * REF_KERNEL)


def ref_nearest(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """PyTorch's default nearest resize: source index floor(dst * in / out)."""
    rows = np.arange(size[0]) * img.shape[1] // size[0]
    cols = np.arange(size[1]) * img.shape[2] // size[1]
    return img[:, rows][:, :, cols]


def ref_decompose(img: np.ndarray, num_high: int) -> List[np.ndarray]:
    bands = []
    cur = img
    for _ in range(num_high):
        down = ref_down(cur)
        up = ref_up(down)
        if up.shape != cur.shape:
            up = ref_nearest(up, cur.shape[1:])
        bands.append(cur - up)
        cur = down
    return bands + [cur]


def ref_reconstruct(pyramid: List[np.ndarray]) -> np.ndarray:
    img = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        up = ref_up(img)
        if up.shape != band.shape:
            up = ref_nearest(up, band.shape[1:])
        img = up + band
    return img


def per_sample(fn, x: torch.Tensor, *args) -> np.ndarray:
    """Apply a (C, H, W) numpy reference to every sample of an (N, C, H, W) tensor."""
    return np.stack([fn(s, *args) for s in x.numpy()])


def random_image(
    h: int, w: int, n: int = 2, c: int = 3, seed: int = 0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=gen, dtype=torch.float64).to(dtype)


# -------------------------------------------------------------------------------------- tests
def test_kernel_is_normalised_binomial():
    kernel = binomial_kernel(3, dtype=torch.float64)
    assert kernel.shape == (3, 1, 5, 5)
    for c in range(3):
        np.testing.assert_array_equal(kernel[c, 0].numpy(), REF_KERNEL)
    assert kernel.sum().item() == pytest.approx(3.0, abs=1e-15)


@pytest.mark.parametrize("size", [(3, 3), (4, 7), (9, 9), (33, 47), (100, 67)])
def test_blur_down_up_match_reference(size):
    x = random_image(*size, seed=sum(size))
    kernel = binomial_kernel(3, dtype=torch.float64)
    np.testing.assert_allclose(
        blur(x, kernel).numpy(), per_sample(ref_blur, x, REF_KERNEL), rtol=0, atol=1e-12
    )
    down = downsample(x, kernel)
    assert down.shape[-2:] == (math.ceil(size[0] / 2), math.ceil(size[1] / 2))
    np.testing.assert_allclose(down.numpy(), per_sample(ref_down, x), rtol=0, atol=1e-12)
    up = upsample(x, kernel)
    assert up.shape[-2:] == (2 * size[0], 2 * size[1])
    np.testing.assert_allclose(up.numpy(), per_sample(ref_up, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "size,num_high", [((9, 9), 3), ((33, 47), 4), ((100, 67), 2), ((18, 35), 1), ((341, 512), 3)]
)
def test_decompose_and_reconstruct_match_reference(size, num_high):
    x = random_image(*size, seed=7)
    kernel = binomial_kernel(3, dtype=torch.float64)
    pyramid = pyramid_decompose(x, kernel, num_high)
    expected = [
        np.stack(levels) for levels in zip(*[ref_decompose(s, num_high) for s in x.numpy()])
    ]
    assert len(pyramid) == num_high + 1
    for level, (got, want) in enumerate(zip(pyramid, expected)):
        assert got.shape[1:] == want.shape[1:], f"level {level}"
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12, err_msg=f"level {level}")
    # Reconstruct a modified pyramid so the check does not reduce to the round trip.
    edited = [2.0 * p for p in pyramid]
    np.testing.assert_allclose(
        pyramid_reconstruct(edited, kernel).numpy(),
        np.stack([ref_reconstruct([2.0 * lv[i] for lv in expected]) for i in range(len(x))]),
        rtol=0,
        atol=1e-12,
    )


ROUNDTRIP_CASES = [
    (size, num_high)
    for size in [(9, 9), (33, 47), (341, 512), (100, 67)]
    for num_high in range(1, 6)
    if min(size) >= min_input_size(num_high)
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("size,num_high", ROUNDTRIP_CASES)
def test_roundtrip_is_lossless(size, num_high, dtype):
    x = random_image(*size, n=1, seed=num_high, dtype=dtype)
    pyramid = LaplacianPyramid(num_high).to(dtype)
    bands = pyramid.decompose(x)
    out = pyramid.reconstruct(bands)
    assert out.dtype == dtype
    assert (out - x).abs().max().item() <= ROUNDTRIP_ATOL[dtype]
    # The bands carry real detail (the round trip is not a copy through the low level alone).
    assert bands[0].abs().max().item() > 0.05


@pytest.mark.parametrize("size", [(9, 9), (33, 47), (341, 512), (100, 67), (17, 18)])
@pytest.mark.parametrize("num_high", [1, 2, 3])
def test_band_shapes_are_ceil_halved(size, num_high):
    pyramid = LaplacianPyramid(num_high).decompose(torch.zeros(1, 3, *size))
    h, w = size
    for level, band in enumerate(pyramid):
        assert band.shape == (1, 3, h, w), f"level {level}"
        h, w = math.ceil(h / 2), math.ceil(w / 2)


@pytest.mark.parametrize("num_high", [1, 2, 3, 4, 5])
def test_min_input_size_is_accepted_and_one_less_is_not(num_high):
    smallest = min_input_size(num_high)
    assert smallest == 2**num_high + 1
    check_input_size(smallest, smallest, num_high)
    pyramid = LaplacianPyramid(num_high)
    x = random_image(smallest, smallest, n=1)
    assert (pyramid.reconstruct(pyramid.decompose(x)) - x).abs().max() < 1e-12
    for h, w in [(smallest - 1, smallest), (smallest, smallest - 1)]:
        with pytest.raises(ValueError, match=f"{h}x{w}"):
            pyramid.decompose(random_image(h, w, n=1))


def test_8x8_with_three_levels_names_the_size():
    with pytest.raises(ValueError, match=r"8x8.*num_high=3.*at least 9"):
        LaplacianPyramid(3).decompose(torch.rand(1, 3, 8, 8))


def test_kernel_is_a_non_persistent_buffer_that_follows_to(device, dtype):
    pyramid = LaplacianPyramid(3)
    assert "kernel" in dict(pyramid.named_buffers())
    assert "kernel" not in pyramid.state_dict()
    pyramid = pyramid.to(device=device, dtype=dtype)
    assert pyramid.kernel.dtype == dtype
    assert pyramid.kernel.device.type == device.type
    x = torch.rand(1, 3, 20, 21, device=device).to(dtype)
    bands = pyramid.decompose(x)
    assert all(b.dtype == dtype and b.device.type == device.type for b in bands)


def test_blur_of_constant_is_constant(device, dtype):
    value = 0.375
    x = torch.full((1, 3, 13, 16), value, device=device, dtype=dtype)
    kernel = binomial_kernel(3, dtype=dtype, device=device)
    atol = CONST_ATOL[dtype]
    for name, out in [
        ("blur", blur(x, kernel)),
        ("downsample", downsample(x, kernel)),
        ("upsample", upsample(x, kernel)),
    ]:
        assert (out.double() - value).abs().max().item() <= atol, name
    bands = pyramid_decompose(x, kernel, 3)
    for band in bands[:-1]:
        assert band.abs().max().item() <= 4 * atol
    assert (bands[-1].double() - value).abs().max().item() <= atol


def test_single_channel_pyramid():
    x = random_image(23, 30, n=1, c=1)
    pyramid = LaplacianPyramid(2, channels=1).double()
    bands = pyramid.decompose(x)
    assert all(b.shape[1] == 1 for b in bands)
    np.testing.assert_allclose(
        bands[0][0].numpy(), ref_decompose(x[0].numpy(), 2)[0], rtol=0, atol=1e-12
    )
