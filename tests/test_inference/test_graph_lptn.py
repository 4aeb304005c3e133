"""The whole-image graph path against the exact network: float32 fidelity, sizes, layouts,
torch.compile, and the nearest index tables."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from inference_test_utils import random_lptn

from lptn.archs.lptn_arch import LPTN
from lptn.data.image_io import tensor_to_image
from lptn.inference import FastLPTN, GraphLPTN
from lptn.inference.array_enhance import enhance_array
from lptn.inference.graph_lptn import _mask_block_unrolled, nearest_table, resize_nearest
from lptn.platform.runtime import build_runtime

PHOTOS = ["a0212", "a2917", "a4576"]  # portrait 512 wide, landscape, 343 rows (odd)


def test_official_checkpoint_on_real_photos(
    official_net: LPTN, photo_tensors, device: torch.device
) -> None:
    net = copy.deepcopy(official_net).to(device)
    graph = GraphLPTN(net).to(device)
    with torch.inference_mode():
        for name, x in photo_tensors:
            if name in PHOTOS:
                x = x.to(device)
                diff = (graph(x) - net(x)).abs().max().item()
                assert diff <= 1e-4, f"{name} on {device}: max abs difference {diff}"


@pytest.mark.parametrize(
    "in_size,out_size", [(10, 19), (8204, 8203), (4101, 8201), (7, 7), (5000, 4099)]
)
def test_nearest_tables_equal_pytorchs_resize(in_size: int, out_size: int) -> None:
    # Above ~4096 px a float64 scale would pick other source rows than F.interpolate.
    x = torch.arange(in_size, dtype=torch.float32).view(1, 1, in_size, 1)
    want = F.interpolate(x, size=(out_size, 1), mode="nearest").flatten().long()
    assert torch.equal(nearest_table(in_size, out_size, x.device), want)
    traced = nearest_table(torch.tensor(in_size), torch.tensor(out_size), x.device)
    assert torch.equal(traced, want)
    assert torch.equal(resize_nearest(x, out_size, 1).flatten().long(), want)


def test_unrolled_mask_blocks_equal_the_modules(official_net: LPTN, photo_tensors) -> None:
    x = photo_tensors[0][1][:, :, :64, :96]
    for i in range(official_net.num_high):
        block = official_net.trans_high.mask_block(i)
        with torch.inference_mode():
            assert (_mask_block_unrolled(block, x) - block(x)).abs().max() <= 1e-5


def test_channels_last_gives_the_same_output(official_net: LPTN, photo_tensors) -> None:
    x = photo_tensors[1][1]
    with torch.inference_mode():
        plain = GraphLPTN(official_net)(x)
        last = GraphLPTN(official_net, channels_last=True)(x)
    assert (plain - last).abs().max() <= 1e-5


def test_graph_and_fast_paths_write_the_same_8bit_pictures(official_net: LPTN, fivek_pairs) -> None:
    name, src, _ = fivek_pairs[2]
    img = np.round(src * 255).astype(np.uint8)
    # Through lptn-enhance's own function.
    runtime = build_runtime({"device": "cpu"})
    graph = enhance_array(official_net, img, runtime, GraphLPTN(official_net))
    fast = enhance_array(official_net, img, runtime, FastLPTN(official_net))
    # Under a bf16 runtime only the graph path's conv stacks are lowered (by itself): the
    # runtime's autocast must not also lower its pyramid.
    bf16_graph = GraphLPTN(official_net, precision="bf16")
    via_enhance = enhance_array(
        official_net, img, build_runtime({"device": "cpu"}, "bf16"), bf16_graph
    )
    with torch.inference_mode():
        direct = bf16_graph(torch.from_numpy(src.transpose(2, 0, 1).copy())[None])
    assert np.array_equal(via_enhance, tensor_to_image(direct[0], dtype=np.uint8))
    assert graph.dtype == np.uint8 and graph.shape == img.shape
    # Both within 1e-4 of the exact path: at most a rounding step apart, on few pixels.
    diff = np.abs(graph.astype(int) - fast.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, name


def test_too_small_input_names_the_minimum(official_net: LPTN) -> None:
    with pytest.raises(ValueError, match="8x40 pixels is too small.*at least 9"):
        GraphLPTN(official_net)(torch.rand(1, 3, 8, 40))


def test_bad_arguments_are_refused(official_net: LPTN) -> None:
    with pytest.raises(TypeError, match="Conv2d"):
        GraphLPTN(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="fp8"):
        GraphLPTN(official_net, precision="fp8")
    with pytest.raises(ValueError, match="fastest"):
        GraphLPTN(official_net, compile_mode="fastest")


def test_torch_compile_matches_the_exact_path(official_net: LPTN, photo_tensors) -> None:
    """One compiled run (inductor; about 30 s on two CPU cores): real photo crop, batch 2."""
    pytest.importorskip("torch._inductor")
    net = random_lptn("LPTNPaper", 2, seed=4)
    photos = dict(photo_tensors)
    x = torch.cat([photos["a0212"][:, :, :75, :98], photos["a4576"][:, :, :75, :98]])
    compiled_official = GraphLPTN(official_net, compile_mode="default")
    compiled_paper = GraphLPTN(net, compile_mode="default")
    with torch.inference_mode():
        assert (compiled_official(x) - official_net(x)).abs().max() <= 1e-4
        assert (compiled_paper(x) - net(x)).abs().max() <= 1e-4
