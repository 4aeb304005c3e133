"""The context protocol's tiling (lptn.inference.context_tiling): the small copy made from a
few rows equals PyTorch's resize of the whole photo, and a generator that offers the protocol
gives the same output tiled as whole, through PhotoEnhancer's fast path."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from lptn.archs import ARCH_REGISTRY, build_network
from lptn.data.image_io import image_to_tensor, tensor_to_image, to_float
from lptn.inference.context_tiling import (
    ContextTiledPath,
    offers_context,
    small_copy,
    small_copy_from,
)
from lptn.inference.settings import InferenceSettings, build_inference_path
from lptn.inference.tiling import ArraySource, TensorSource
from lptn.photo import PhotoEnhancer
from lptn.platform.runtime import build_runtime


def _photo(fivek_sample_dir: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(fivek_sample_dir / "source" / f"{stem}.png").convert("RGB"))


@pytest.mark.parametrize("size", [(256, 256), (37, 101), (512, 7)])
def test_the_small_copy_from_rows_is_pytorchs_resize(
    fivek_sample_dir: Path, size: Tuple[int, int]
) -> None:
    img = _photo(fivek_sample_dir, "a4576")  # 343 x 512
    whole = small_copy(image_to_tensor(to_float(img)).unsqueeze(0), size)
    from_rows = small_copy_from(ArraySource(img), size)
    assert from_rows.shape == whole.shape == (1, 3, *size)
    # float32 rounding of the source coordinates only: 1/400 of an 8-bit level
    assert (from_rows - whole).abs().max() <= 1e-5


class _GreyWorld(nn.Module):
    """A real context generator: the grey-world white balance. The context is each channel's
    mean over the small copy; ``apply_context`` scales each channel to the mean of the three."""

    context_size = (64, 64)

    def context(self, x_small: torch.Tensor) -> torch.Tensor:
        return x_small.mean(dim=(2, 3), keepdim=True)

    def apply_context(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return x * (context.mean(dim=1, keepdim=True) / context.clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_context(x, self.context(small_copy(x, self.context_size)))


_LUT = "ImageAdaptive3DLUT"
_CONTEXT_GENERATORS = [
    pytest.param(lambda: _GreyWorld(), id="grey-world"),
    pytest.param(
        lambda: build_network({"type": _LUT}),
        id=_LUT,
        marks=[] if _LUT in ARCH_REGISTRY else [pytest.mark.skip(reason=f"{_LUT} not registered")],
    ),
]


@pytest.mark.parametrize("make", _CONTEXT_GENERATORS)
def test_tiled_equals_whole_on_a_photo(fivek_sample_dir: Path, make) -> None:
    torch.manual_seed(0)
    net = make().eval()
    assert offers_context(net)
    img = _photo(fivek_sample_dir, "a0212")
    runtime = build_runtime({"device": "cpu"}, "fp32")
    # 40-row strips (a budget of 0.3 MB) and 97-pixel square tiles
    for settings in (
        InferenceSettings(memory_budget_mb=0.3),
        InferenceSettings(tile_size=97),
    ):
        enhancer = PhotoEnhancer(net, runtime, settings)
        assert isinstance(enhancer.inference_path, ContextTiledPath)
        regions = enhancer.inference_path.regions(1, *img.shape[:2], torch.device("cpu"))
        assert len(regions) > 4
        tiled = enhancer.enhance_rgb(img)
        with torch.no_grad():
            whole = tensor_to_image(net(image_to_tensor(to_float(img)).unsqueeze(0))[0])
        assert tiled.shape == img.shape
        assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
        x = image_to_tensor(to_float(img)).unsqueeze(0)
        with torch.no_grad():
            assert (enhancer.inference_path(x) - net(x)).abs().max() <= 1e-5
    assert small_copy_from(TensorSource(x), (8, 8)).shape == (1, 3, 8, 8)


def test_other_generators_run_exact_with_one_info_line(lptn_log) -> None:
    net = build_network({"type": "Discriminator"})
    assert build_inference_path(net, InferenceSettings()) is None
    lines = [r.getMessage() for r in lptn_log.records if "not an LPTN network" in r.getMessage()]
    assert len(lines) == 1 and lptn_log.records[-1].levelname == "INFO"
    assert "Discriminator" in lines[0] and "exact" in lines[0]
