"""``lptn-enhance --export-lut DIR``: the 3D LUT each photo was graded with, as a ``.cube``.

:class:`LUTRecorder` stands in front of a :class:`~lptn.photo.PhotoEnhancer` for one photo: it
sees the array exactly as the enhancer is fed (upright, converted to sRGB, a grey photo
repeated in R, G, B), predicts that array's LUT as the context-tiled path does (from the
bilinear small copy) and passes the array on. The LUT maps the network's sRGB input to its
output, which is what an editor applies to the sRGB photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from lptn.archs.lut3d_arch import identity_lut
from lptn.inference.context_tiling import small_copy_from
from lptn.inference.cube_lut import write_cube
from lptn.inference.tiling import ArraySource
from lptn.photo import PhotoEnhancer
from lptn.photo.enhancer import LUMA_WEIGHTS


def check_lut_generator(net: nn.Module) -> None:
    """Refuse ``--export-lut`` for a generator that does not predict a LUT (LPTN).

    Raises:
        ValueError: one line naming the generator.
    """
    if not (callable(getattr(net, "predict_lut", None)) and hasattr(net, "context_size")):
        raise ValueError(
            f"--export-lut: the generator is {type(net).__name__}, which applies no 3D LUT; "
            "it needs 3D-LUT weights (network_g type ImageAdaptive3DLUT)"
        )


def photo_lut(enhancer: PhotoEnhancer, img: np.ndarray) -> torch.Tensor:
    """The LUT ``enhancer``'s generator applies to ``img`` (HxWx3 uint8/uint16 sRGB):
    (3, S, S, S) float32 on the CPU, layout of :mod:`lptn.archs.lut3d_arch`."""
    # Checked by check_lut_generator: the network offers predict_lut and context_size.
    net: Any = enhancer.net
    height, width = (int(s) for s in net.context_size)
    with torch.inference_mode():
        # The small copy the context-tiled path predicts from: the same LUT as applied.
        small = small_copy_from(ArraySource(img, enhancer.runtime.device), (height, width))
        lut = net.predict_lut(small)
    return lut[0].float().cpu()


class LUTRecorder:
    """An :class:`~lptn.photo.pipeline.ArrayEnhancer` that keeps the LUT of the array it
    enhances (``lut``, None until then) and returns ``enhancer``'s results unchanged.

    The kept LUT is the whole per-pixel grade: with ``strength`` S the output is
    ``x + S (lut(x) - x)``, which is the lookup in ``identity + S (lut - identity)`` (the
    trilinear lookup is linear in the table and exact for the identity); for a grey photo the
    output is the Rec. 709 luma of the colour output, repeated in R, G, B.
    """

    def __init__(self, enhancer: PhotoEnhancer) -> None:
        self.enhancer = enhancer
        self.lut: Optional[torch.Tensor] = None

    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        self.lut = _blended(photo_lut(self.enhancer, img), strength)
        return self.enhancer.enhance_rgb(img, strength)

    def enhance_grey(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        lut = photo_lut(self.enhancer, np.repeat(img[:, :, None], 3, axis=2))
        luma = torch.einsum("c...,c->...", lut, torch.from_numpy(LUMA_WEIGHTS))
        self.lut = _blended(luma.expand_as(lut).clone(), strength)
        return self.enhancer.enhance_grey(img, strength)


def _blended(lut: torch.Tensor, strength: float) -> torch.Tensor:
    """``identity + strength * (lut - identity)`` for (3, S, S, S) ``lut``."""
    if strength == 1.0:
        return lut
    ident = identity_lut(lut.shape[1])
    # The enhancer blends the clipped output; clipping the table is the same but within the
    # cells that straddle 0 or 1.
    return ident + float(strength) * (lut.clamp(0.0, 1.0) - ident)


def lut_path(lut_dir: Path, output_relative: Path) -> Path:
    """Where a photo's LUT goes: ``lut_dir / output_relative`` with the ``.cube`` suffix."""
    return lut_dir / output_relative.with_suffix(".cube")


def write_photo_lut(path: Path, lut: torch.Tensor, title: str) -> None:
    """Write ``lut`` (3, S, S, S) to ``path`` (its folders made), titled ``title``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_cube(path, lut, title=title)
