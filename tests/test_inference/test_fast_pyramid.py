"""Separable / polyphase pyramid operators against the exact ones, regions and windows too."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from lptn.archs import fast_pyramid as fp
from lptn.archs import laplacian_pyramid as lp

KERNEL = lp.binomial_kernel(3)
SIZES = [(9, 9), (10, 17), (23, 40), (33, 47), (64, 96), (101, 37)]


@pytest.mark.parametrize("size", SIZES)
def test_down_up_match_the_exact_operators(size) -> None:
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(sum(size)))
    assert torch.allclose(fp.downsample(x), lp.downsample(x, KERNEL), atol=1e-6, rtol=0)
    assert torch.allclose(fp.upsample(x), lp.upsample(x, KERNEL), atol=1e-6, rtol=0)


@pytest.mark.parametrize("num_high", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(17, 17), (33, 47), (64, 96), (101, 37)])
def test_decompose_and_reconstruct_match(num_high: int, size) -> None:
    if min(size) < 2**num_high + 1:
        pytest.skip("too small for this num_high")
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(num_high))
    exact = lp.pyramid_decompose(x, KERNEL, num_high)
    fast = fp.pyramid_decompose(x, num_high)
    assert [t.shape for t in fast] == [t.shape for t in exact]
    for a, b in zip(exact, fast):
        assert (a - b).abs().max() <= 1e-6
    assert (
        fp.pyramid_reconstruct(fast) - lp.pyramid_reconstruct(exact, KERNEL)
    ).abs().max() <= 1e-6
    assert (fp.pyramid_reconstruct(fast) - x).abs().max() <= 1e-5  # lossless, odd sizes too


def test_regions_and_windows_equal_slices_of_the_whole_map_bitwise() -> None:
    rng = random.Random(3)
    for trial in range(40):
        h, w = rng.randint(9, 90), rng.randint(9, 90)
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(trial))
        down, up = fp.downsample(x), fp.upsample(x)
        r0 = rng.randrange(down.shape[2])
        r1 = rng.randint(r0 + 1, down.shape[2])
        c0 = rng.randrange(down.shape[3])
        c1 = rng.randint(c0 + 1, down.shape[3])
        # a window holding just what the region needs, as tiles do
        nr, nc = fp.down_needs((r0, r1), h), fp.down_needs((c0, c1), w)
        window = fp.MapWindow(x[:, :, nr[0] : nr[1], nc[0] : nc[1]], nr[0], nc[0], h, w)
        assert torch.equal(fp.down_region(window, (r0, r1), (c0, c1)), down[:, :, r0:r1, c0:c1])
        r0 = rng.randrange(2 * h)
        r1 = rng.randint(r0 + 1, 2 * h)
        c0 = rng.randrange(2 * w)
        c1 = rng.randint(c0 + 1, 2 * w)
        nr, nc = fp.up_needs((r0, r1), h), fp.up_needs((c0, c1), w)
        window = fp.MapWindow(x[:, :, nr[0] : nr[1], nc[0] : nc[1]], nr[0], nc[0], h, w)
        assert torch.equal(fp.up_region(window, (r0, r1), (c0, c1)), up[:, :, r0:r1, c0:c1])


def _interpolate_index(in_size: int, out_size: int) -> torch.Tensor:
    ramp = torch.arange(in_size, dtype=torch.float32).view(1, 1, 1, in_size)
    return F.interpolate(ramp, size=(1, out_size)).view(-1).long()


@pytest.mark.parametrize(
    "in_size,out_size",
    [
        (342, 341),
        (171, 341),
        (4098, 4097),
        (4102, 4101),
        (4097, 8193),
        (4101, 8201),
        (1920, 3840),
        (5, 3),
        (7, 20),
        (3840, 2160),
    ],
)
def test_nearest_index_is_pytorchs_float32_formula(in_size: int, out_size: int) -> None:
    assert torch.equal(fp.nearest_index(in_size, out_size), _interpolate_index(in_size, out_size))


def test_large_odd_sizes_are_not_plain_slices() -> None:
    # Why the tables exist: float32 rounding moves the last index for big odd sizes.
    assert not torch.equal(fp.nearest_index(4098, 4097), torch.arange(4097))
    assert not torch.equal(fp.nearest_index(4097, 8193), torch.arange(8193) // 2)


@pytest.mark.parametrize("size", [(5, 4097), (5, 8203)])
def test_resized_up_region_on_large_odd_widths(size) -> None:
    h, w = size
    x = torch.rand(1, 2, (h + 1) // 2, (w + 1) // 2, generator=torch.Generator().manual_seed(w))
    exact = F.interpolate(lp.upsample(x, KERNEL[:2]), size=size)
    for cols in [(0, w), (w - 37, w), (1000, 1701)]:
        got = fp.up_resized_region_unscaled(x, size, (0, h), cols) / 64.0
        assert (got - exact[..., cols[0] : cols[1]]).abs().max() <= 1e-6


@pytest.mark.parametrize(
    "in_size,out_size,start,stop",
    [(135, 540, 0, 540), (135, 540, 77, 301), (4101, 8201, 8100, 8201), (171, 341, 3, 340)],
)
def test_take_nearest_equals_a_gather(in_size: int, out_size: int, start: int, stop: int) -> None:
    m = torch.rand(1, 3, 4, in_size)
    index = fp.nearest_index(in_size, out_size)[start:stop]
    # rows follow the i >> 1 pattern from row 0; columns the resize table of this region
    got = fp.take_nearest(m, torch.arange(8) >> 1, index, 0, start)
    want = m[:, :, torch.arange(8) >> 1][..., index]
    assert torch.equal(got, want)


def test_too_small_for_reflect_padding_is_an_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        fp.downsample(torch.rand(1, 3, 2, 9))
    with pytest.raises(ValueError, match="num_high=3"):
        fp.pyramid_decompose(torch.rand(1, 3, 8, 40), 3)
