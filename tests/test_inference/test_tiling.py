"""Tiled processing equals untiled processing; memory plans; integer-image sources/sinks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_test_utils import random_lptn

from lptn.inference import FastLPTN
from lptn.inference.tiling import (
    ArraySink,
    ArraySource,
    for_each_region,
    plan_memory,
    split_span,
    tile_grid,
)


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return np.round(t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


@pytest.mark.parametrize(
    "tile,budget", [(16, None), (37, None), (100, None), (None, 1.0), (53, 1.0)]
)
def test_official_net_tiled_equals_untiled(official_net, photo_tensors, tile, budget) -> None:
    name, x = next((n, t) for n, t in photo_tensors if n == "a4576")  # 343 x 512
    untiled = FastLPTN(official_net)
    tiled = FastLPTN(official_net, tile_size=tile, memory_budget_mb=budget, workers=2)
    plan = tiled.plan(1, *x.shape[-2:])
    assert plan.tiled and not untiled.plan(1, *x.shape[-2:]).tiled
    with torch.inference_mode():
        a, b = untiled(x), tiled(x)
    assert (a - b).abs().max() <= 1e-4
    assert np.array_equal(_to_uint8(a), _to_uint8(b))
    assert torch.equal(a, b)  # the per-pixel arithmetic does not depend on the plan


@pytest.mark.parametrize("arch", ["LPTN", "LPTNPaper"])
@pytest.mark.parametrize("num_high", [1, 2, 3])
def test_random_nets_tiled_equals_untiled_on_odd_sizes(arch: str, num_high: int) -> None:
    net = random_lptn(arch, num_high, seed=20 + num_high)
    x = torch.rand(2, 3, 45, 71, generator=torch.Generator().manual_seed(num_high))
    with torch.inference_mode():
        whole = FastLPTN(net)(x)
        for tile in (16, 23):
            tiled = FastLPTN(net, tile_size=tile, memory_budget_mb=0.05, workers=2)(x)
            assert torch.equal(whole, tiled), (arch, num_high, tile)
        assert (whole - net(x)).abs().max() <= 1e-4


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_image_route_equals_tensor_route(official_net, fivek_pairs, dtype) -> None:
    src = fivek_pairs[3][1][:131, :97]
    peak = 255 if dtype == np.uint8 else 65535
    img = np.round(src * peak).astype(dtype)
    x = torch.from_numpy((img.astype(np.float32) / np.float32(peak)).transpose(2, 0, 1).copy())
    with torch.inference_mode():
        want = FastLPTN(official_net)(x[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()
    want = np.round(want * np.float32(peak)).astype(dtype)
    for tile in (None, 40):
        got = FastLPTN(official_net, tile_size=tile, memory_budget_mb=2.0, workers=2).enhance_array(
            img
        )
        assert got.dtype == dtype and np.array_equal(got, want)


def test_array_source_and_sink_convert_like_image_io() -> None:
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    region = ArraySource(img).read((1, 4), (2, 6))
    assert region.shape == (1, 3, 3, 4) and region.dtype == torch.float32
    assert torch.equal(region[0, :, 0, 0], torch.tensor(img[1, 2] / np.float32(255)))
    sink = ArraySink(5, 7)
    sink.write((0, 5), (0, 7), torch.full((1, 3, 5, 7), 0.5 / 255 + 1e-4))
    assert (sink.out == 1).all()
    with pytest.raises(TypeError, match="uint8 or uint16"):
        ArraySink(5, 7, np.float32)
    with pytest.raises(ValueError, match="HxWx3"):
        ArraySource(np.zeros((5, 7), np.uint8))


def test_plans_follow_the_budget() -> None:
    big = plan_memory(1, 2160, 3840, 3, budget_mb=4096)
    assert not big.tiled and big.store_level1 and big.mask_rows == 540
    small = plan_memory(1, 2160, 3840, 3, budget_mb=64)
    assert small.tiled and not small.store_level1 and small.mask_rows < 540
    assert small.estimate_mb < big.estimate_mb
    forced = plan_memory(1, 2160, 3840, 3, budget_mb=4096, tile_size=500)
    assert forced.tile == (500, 500) and not forced.store_level1
    accel = plan_memory(1, 2160, 3840, 3, budget_mb=4096, block_pixels=None)
    assert accel.tile[1] == 3840 and accel.tile[0] >= 1024  # few large regions (launches)


def test_region_helpers() -> None:
    assert split_span(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tile_grid(5, 3, 4, 2) == [
        ((0, 4), (0, 2)),
        ((0, 4), (2, 3)),
        ((4, 5), (0, 2)),
        ((4, 5), (2, 3)),
    ]
    with pytest.raises(ValueError):
        split_span(10, 0)
    threads = torch.get_num_threads()
    seen = []
    for_each_region(seen.append, list(range(7)), torch.device("cpu"), workers=2)
    assert sorted(seen) == list(range(7)) and torch.get_num_threads() == threads

    def fail(region: int) -> None:
        raise RuntimeError(f"region {region}")

    with pytest.raises(RuntimeError, match="region"):
        for_each_region(fail, [0, 1, 2], torch.device("cpu"), workers=2)
    assert torch.get_num_threads() == threads
