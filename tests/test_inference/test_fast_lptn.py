"""The fast path against the exact network: float32 fidelity, reduced precision, metrics.

The metric and reduced-precision checks run for the graph path (GraphLPTN) too.
"""

from __future__ import annotations

import functools
import logging
from typing import List, Tuple

import numpy as np
import pytest
import torch
from inference_test_utils import random_lptn

from lptn.archs.lptn_arch import LPTN
from lptn.inference import FastLPTN, GraphLPTN
from lptn.inference.conv_stacks import ConvStack, native_reduced_precision, onednn_available
from lptn.inference.openvino_stack import openvino_available
from lptn.metrics import calculate_metric

# Photos of each shape in the sample: portrait, landscape, 340 / 343 / 344 rows.
PHOTOS = ["a0212", "a2917", "a2995", "a4532", "a4576"]
ACCELERATED_PATHS = {"fast": FastLPTN, "graph": GraphLPTN}
# Reduced precision in PyTorch's own kernels, and in OpenVINO's when installed (which keep
# float32 on CPUs without native bfloat16: then the output equals fp32's).
REDUCED_PATHS = {
    "fast": FastLPTN,
    "graph": GraphLPTN,
    **(
        {"fast-openvino": functools.partial(FastLPTN, conv_backend="openvino")}
        if openvino_available()
        else {}
    ),
}


def _by_name(photo_tensors, names) -> List[Tuple[str, torch.Tensor]]:
    return [(n, x) for n, x in photo_tensors if n in names]


def test_official_checkpoint_on_real_photos(official_net: LPTN, photo_tensors) -> None:
    fast = FastLPTN(official_net)
    with torch.inference_mode():
        for name, x in _by_name(photo_tensors, PHOTOS):
            diff = (fast(x) - official_net(x)).abs().max().item()
            assert diff <= 1e-4, f"{name}: max abs difference {diff}"


@pytest.mark.parametrize("path", list(ACCELERATED_PATHS))
@pytest.mark.parametrize("arch", ["LPTN", "LPTNPaper"])
@pytest.mark.parametrize("num_high", [1, 2, 3, 4])
def test_random_networks_on_odd_sizes_and_batches(arch: str, num_high: int, path: str) -> None:
    net = random_lptn(arch, num_high, seed=num_high)
    fast = ACCELERATED_PATHS[path](net)
    gen = torch.Generator().manual_seed(7)
    for size in [(2**num_high + 1, 2**num_high + 4), (37, 53), (64, 81)]:
        x = torch.rand(2, 3, *size, generator=gen)
        with torch.inference_mode():
            diff = (fast(x) - net(x)).abs().max().item()
        assert diff <= 1e-4, f"{arch} num_high={num_high} {size}: {diff}"


def test_large_odd_width_uses_pytorchs_index_tables() -> None:
    # Widths above 8192 make nearest resizing differ from slicing / halving (float32).
    net = random_lptn("LPTN", 3, seed=5)
    x = torch.rand(1, 3, 17, 8203, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        for path in ACCELERATED_PATHS.values():
            diff = (path(net)(x) - net(x)).abs().max().item()
            assert diff <= 1e-4, path.__name__


@pytest.mark.parametrize("path", list(ACCELERATED_PATHS))
def test_metrics_on_the_fivek_sample_are_unchanged(
    official_net: LPTN, fivek_pairs, path: str
) -> None:
    """PSNR of every image against the exact path's; SSIM against docs/REFERENCE.md's anchor."""
    fast = ACCELERATED_PATHS[path](official_net)
    psnr = {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False}
    ssim = {"type": "calculate_ssim", "crop_border": 0, "test_y_channel": False}

    def to_uint8(t: torch.Tensor) -> np.ndarray:
        return np.round(t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)

    exact_psnr, fast_psnr, fast_ssim = [], [], []
    for _name, src, tgt in fivek_pairs:
        x = torch.from_numpy(np.ascontiguousarray(src.transpose(2, 0, 1)))[None]
        gt = np.round(tgt * 255).astype(np.uint8)
        with torch.inference_mode():
            exact_img, fast_img = to_uint8(official_net(x)), to_uint8(fast(x))
        exact_psnr.append(calculate_metric({"img": exact_img, "img2": gt}, psnr, "psnr"))
        fast_psnr.append(calculate_metric({"img": fast_img, "img2": gt}, psnr, "psnr"))
        fast_ssim.append(calculate_metric({"img": fast_img, "img2": gt}, ssim, "ssim"))
    assert abs(np.mean(fast_psnr) - np.mean(exact_psnr)) < 0.01
    assert np.max(np.abs(np.subtract(fast_psnr, exact_psnr))) < 0.01
    assert np.mean(fast_psnr) == pytest.approx(22.9079, abs=0.005)
    assert np.mean(fast_ssim) == pytest.approx(0.8808, abs=0.0005)


@pytest.mark.parametrize("path", list(REDUCED_PATHS))
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_psnr_against_float32(
    official_net: LPTN, photo_tensors, precision: str, path: str
) -> None:
    make = REDUCED_PATHS[path]
    fp32, reduced = make(official_net), make(official_net, precision=precision)
    names = PHOTOS[:3] if precision == "bf16" else PHOTOS[:1]  # fp16 convs are slow on CPUs
    for name, x in _by_name(photo_tensors, names):
        with torch.inference_mode():
            a, b = fp32(x).clamp(0, 1), reduced(x).clamp(0, 1)
        mse = ((a.double() - b.double()) ** 2).mean().item()
        psnr = 10 * np.log10(1.0 / mse) if mse > 0 else float("inf")
        assert psnr >= 45.0, f"{name} {precision}: {psnr:.1f} dB"
        assert b.dtype == torch.float32


def test_caller_autocast_does_not_lower_the_full_resolution_precision(
    official_net: LPTN, photo_tensors
) -> None:
    name, x = photo_tensors[0]
    fast = FastLPTN(official_net)
    with torch.inference_mode():
        want = fast(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(x)
    assert torch.equal(got, want)


CPU_BACKENDS = (
    ["generic"]
    + (["onednn"] if onednn_available() else [])
    + (["openvino"] if openvino_available() else [])
)


@pytest.mark.skipif(len(CPU_BACKENDS) < 2, reason="neither oneDNN nor OpenVINO is available")
def test_conv_backends_agree(official_net: LPTN) -> None:
    x = torch.rand(1, 9, 40, 56, generator=torch.Generator().manual_seed(2))
    x = x.contiguous(memory_format=torch.channels_last)
    module_out = official_net.trans_high.model(x)
    for backend in CPU_BACKENDS:
        stack = ConvStack(official_net.trans_high.model, backend)
        with torch.inference_mode():
            out = stack(x)
        assert (out - module_out).abs().max() <= 1e-5, backend
    low = torch.rand(1, 3, 45, 64, generator=torch.Generator().manual_seed(3))
    low = low.contiguous(memory_format=torch.channels_last)  # as the fast path runs them
    for backend in CPU_BACKENDS:
        with torch.inference_mode():
            whole = ConvStack(official_net.trans_low.model, backend)(low)
            strips = ConvStack(official_net.trans_low.model, backend)(low, strip_rows=10)
            # InstanceNorm statistics stay image-wide. With oneDNN and OpenVINO the per-pixel
            # results do not depend on the strip (what makes tiled == untiled bitwise on the
            # CPU); F.conv2d may pick another algorithm per size.
            if backend != "generic":
                assert torch.equal(whole, strips), backend
            assert (whole - strips).abs().max() <= 1e-6, backend
            assert (whole - official_net.trans_low.model(low)).abs().max() <= 1e-5


@pytest.mark.skipif(not openvino_available(), reason="the openvino extra is not installed")
def test_openvino_backend_follows_the_weights_and_names_its_precision(official_net) -> None:
    net = random_lptn("LPTN", 2, seed=12)
    stack = ConvStack(net.trans_high.model, "openvino")
    x = torch.rand(1, 9, 24, 30, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        first = stack(x)
        net.trans_high.model[0].bias.add_(0.25)  # as a training step would
        second = stack(x)
        assert (second - net.trans_high.model(x)).abs().max() <= 1e-5
    assert not torch.equal(first, second)
    segment = next(iter(stack._segments.values()))
    # A hint: bfloat16 where the CPU has it natively, float32 elsewhere; never something else.
    assert segment.precision(torch.bfloat16) in ("bf16", "f32")
    assert segment.precision(torch.float32) == "f32"


def test_parameters_are_shared_not_copied(official_net: LPTN) -> None:
    net = random_lptn("LPTN", 2, seed=11)
    fast = FastLPTN(net)
    x = torch.rand(1, 3, 33, 40, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = fast(x)
        net.trans_high.trans_mask_block_0[0].bias.add_(0.5)
        net.trans_low.model[0].bias.add_(0.1)
        after = fast(x)
        assert (after - net(x)).abs().max() <= 1e-4
    assert not torch.equal(before, after)


def test_bad_arguments_are_named() -> None:
    net = random_lptn("LPTN", 2)
    with pytest.raises(ValueError, match="precision"):
        FastLPTN(net, precision="int8")
    with pytest.raises(ValueError, match="tile_size"):
        FastLPTN(net, tile_size=0)
    with pytest.raises(TypeError, match="LPTN"):
        FastLPTN(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="num_high=2"):
        FastLPTN(net)(torch.rand(1, 3, 4, 40))


@pytest.mark.parametrize(
    "channels_last,backend", [(False, "generic"), (True, "generic"), (False, "auto")]
)
def test_layout_and_backend_options(
    official_net: LPTN, photo_tensors, channels_last: bool, backend: str
) -> None:
    fast = FastLPTN(official_net, channels_last=channels_last, conv_backend=backend)
    name, x = photo_tensors[1]
    with torch.inference_mode():
        assert (fast(x) - official_net(x)).abs().max() <= 1e-4


def test_emulated_reduced_precision_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    # PyTorch's own bf16 kernels: a warning exactly where the CPU lacks native bfloat16
    # (emulated: measured 9x slower than fp32 on an AVX2-only EPYC).
    net = random_lptn("LPTN", 2, seed=13)
    fast = FastLPTN(net, precision="bf16", conv_backend="generic")
    x = torch.rand(1, 3, 17, 21, generator=torch.Generator().manual_seed(6))
    with caplog.at_level(logging.WARNING, logger="lptn"), torch.inference_mode():
        fast(x)
        fast(x)
    warned = caplog.text.count("no native torch.bfloat16 convolutions")
    assert warned == (0 if native_reduced_precision(torch.bfloat16) else 1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lptn"), torch.inference_mode():
        FastLPTN(net, conv_backend="generic")(x)  # fp32: nothing to say
    assert "native" not in caplog.text
