"""The loaded generator with its runtime and inference settings, applied to photo arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
from torch import nn

from lptn.inference.array_enhance import enhance_array
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.generator_weights import generator_min_side, load_generator
from lptn.inference.settings import InferenceSettings, build_inference_path
from lptn.photo.errors import PhotoError
from lptn.photo.settings import check_strength
from lptn.platform.option_schema import OPTIONS, VAL
from lptn.platform.runtime import Runtime, build_runtime

# Rec. 709 luma weights (the sRGB primaries), to bring an enhanced grey photo back to grey.
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
_PEAK = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
_BLEND_ROWS = 256  # rows per float block when blending: bounds the float copies' memory


class PhotoEnhancer:
    """An LPTN generator ready for photos: ``net`` on ``runtime``'s device and precision,
    through the path ``inference`` picks (fast by default, bounded memory):
    ``inference_path`` is that :class:`FastLPTN` / :class:`GraphLPTN` wrapper of ``net``, or
    None for the exact path.

    Examples:
        >>> import numpy as np
        >>> from skimage import data
        >>> enhancer = PhotoEnhancer.from_weights(device="cpu")  # the built-in FiveK model
        >>> photo = data.astronaut()[:64, :64]  # HxWx3 uint8 sRGB
        >>> out = enhancer.enhance_rgb(photo)
        >>> out.shape, out.dtype
        ((64, 64, 3), dtype('uint8'))
        >>> float(out.mean()) - float(photo.mean())  # brighter, in 8-bit levels
        17.8
        >>> np.array_equal(enhancer.enhance_rgb(photo, strength=0.0), photo)
        True
    """

    def __init__(
        self, net: nn.Module, runtime: Runtime, inference: Optional[InferenceSettings] = None
    ) -> None:
        self.runtime = runtime
        self.inference = inference or InferenceSettings()
        self.net = net.to(runtime.device).eval()
        self.inference_path = build_inference_path(self.net, self.inference, runtime.precision)
        self.min_size = generator_min_side(net)

    @classmethod
    def from_weights(
        cls,
        weights: Optional[Union[str, Path]] = None,
        device: str = OPTIONS.keys["device"].default,
        precision: str = VAL.keys["precision"].default,
        inference: Optional[InferenceSettings] = None,
    ) -> PhotoEnhancer:
        """Load ``weights`` (None = the built-in FiveK checkpoint) onto ``device``."""
        runtime = build_runtime({"device": device}, precision)
        return cls(load_generator(weights), runtime, inference)

    def tiling_note(self, height: int, width: int) -> Optional[str]:
        """How the fast path splits an image of this size, or None when it runs whole."""
        if isinstance(self.inference_path, FastLPTN):
            plan = self.inference_path.plan(1, height, width, self.runtime.device)
            if plan.tiled:
                return f"tiled to fit the memory budget: {plan.describe()}"
        return None

    def _check(self, img: np.ndarray) -> None:
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype not in _PEAK:
            raise PhotoError(
                f"expected an HxWx3 uint8/uint16 RGB array, got {img.dtype} {img.shape}"
            )
        if min(img.shape[:2]) < self.min_size:
            raise PhotoError(
                f"{img.shape[1]}x{img.shape[0]} is too small: this model needs at least "
                f"{self.min_size}x{self.min_size} pixels"
            )

    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """``HxWx3`` uint8/uint16 sRGB -> enhanced array of the same dtype:
        ``input + strength * (enhanced - input)`` on the [0, 1] scale, rounded once."""
        self._check(img)
        strength = check_strength(strength)
        if strength == 1.0:
            return enhance_array(self.net, img, self.runtime, self.inference_path)
        if strength == 0.0:
            return img.copy()
        return blend(img, self.enhance_fine(img), strength)

    def enhance_fine(self, img: np.ndarray) -> np.ndarray:
        """The enhanced image as uint16 (steps of 1/65535), also for 8-bit inputs, so that a
        blend or a grey conversion rounds once at the end."""
        self._check(img)
        wide = img.astype(np.uint16) * np.uint16(257) if img.dtype == np.uint8 else img
        return enhance_array(self.net, wide, self.runtime, self.inference_path)

    def enhance_grey(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """``HxW`` uint8/uint16 grey -> enhanced grey of the same dtype: the network sees the
        grey repeated in R, G, B; its colour output is brought back to grey by Rec. 709 luma."""
        if img.ndim != 2 or img.dtype not in _PEAK:
            raise PhotoError(
                f"expected an HxW uint8/uint16 grey array, got {img.dtype} {img.shape}"
            )
        strength = check_strength(strength)
        fine = self.enhance_fine(np.repeat(img[:, :, None], 3, axis=2))
        luma = np.empty(img.shape, dtype=np.float32)
        for r in range(0, img.shape[0], _BLEND_ROWS):
            block = fine[r : r + _BLEND_ROWS].astype(np.float32)
            luma[r : r + _BLEND_ROWS] = block @ LUMA_WEIGHTS / np.float32(65535.0)
        del fine
        return _blend_float(img, lambda r: luma[r], strength)


def blend(img: np.ndarray, enhanced16: np.ndarray, strength: float) -> np.ndarray:
    """``img + strength * (enhanced - img)`` with ``enhanced16`` uint16 (1/65535 steps), in
    ``img``'s dtype, rounded once (half to even)."""
    scale = np.float32(65535.0)
    return _blend_float(img, lambda r: enhanced16[r].astype(np.float32) / scale, strength)


def _blend_float(
    img: np.ndarray, enhanced: Callable[[slice], np.ndarray], strength: float
) -> np.ndarray:
    """The blend row block by row block; ``enhanced(rows)`` gives float32 values in [0, 1]."""
    peak = np.float32(_PEAK[img.dtype])
    out = np.empty_like(img)
    s = np.float32(strength)
    for r in range(0, img.shape[0], _BLEND_ROWS):
        rows = slice(r, r + _BLEND_ROWS)
        x = img[rows].astype(np.float32) / peak
        y = np.clip(x + s * (enhanced(rows) - x), 0.0, 1.0)
        out[rows] = np.round(y * peak).astype(img.dtype)
    return out
