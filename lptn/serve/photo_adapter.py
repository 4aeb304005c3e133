"""The one place where lptn-serve decodes, enhances and encodes photos.

Everything the web service does with image data goes through this module. Three names follow
the contract of :mod:`lptn.photo.pipeline` (orientation, colour profiles, metadata, bit depth),
which is being built in parallel: ``PhotoError``, ``PhotoEnhancer`` (``from_weights``,
``enhance_rgb``) and ``enhance_photo_bytes``. Until that module is merged, the definitions
marked STAND-IN below implement them with what the package has: OpenCV decoding and encoding
(:mod:`lptn.data.image_io`, no colour management or metadata) and the fast inference path.

Switching to lptn.photo (a few lines, this file only):

1. ``from lptn.photo.pipeline import PhotoEnhancer, PhotoError, enhance_photo_bytes``;
2. delete the STAND-IN definitions (``DEFAULT_WEIGHTS``, ``class PhotoError``,
   ``class PhotoEnhancer``, ``def enhance_photo_bytes``) and the imports only they use
   (``cv2``, ``decode_image``, ``encode_image``, ``ImageReadError``, ``load_generator``,
   ``build_runtime``, ``_EIGHT_BIT_ONLY``);
3. run ``pytest tests/test_serve``: the batching test compares :class:`BatchRunner` with
   ``PhotoEnhancer.enhance_rgb``; should lptn.photo blend ``strength`` differently, make
   :func:`blend` call its blend.

The rest is the server's own and stays: :func:`probe_photo` (format and pixel count from the
header, before decoding, for 413/415), ``UnsupportedPhoto`` / ``PhotoTooLarge`` (subclasses of
whichever ``PhotoError`` is in use), :class:`BatchRunner` (equal-size photos through the
network at once, on accelerators) and the format table. The server passes its queue as the
``enhancer`` of ``enhance_photo_bytes``: any object with ``enhance_rgb(img, strength)``.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Protocol, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import nn

from lptn.archs.laplacian_pyramid import min_input_size
from lptn.data.image_io import ImageReadError, decode_image, encode_image, to_float
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.generator_weights import load_generator
from lptn.inference.settings import InferencePath, InferenceSettings, build_inference_path
from lptn.platform.runtime import Runtime, build_runtime

# STAND-IN: weights used when none are given, until lptn.photo ships built-in weights.
DEFAULT_WEIGHTS = (
    Path(__file__).resolve().parents[2].parent / "shared/models/net_g_FiveK_numhigh3.pth"
)

# Output formats: the ``format`` query value -> (OpenCV extension, media type).
FORMATS = {
    "jpeg": (".jpg", "image/jpeg"),
    "png": (".png", "image/png"),
    "tiff": (".tif", "image/tiff"),
    "webp": (".webp", "image/webp"),
}
# Pillow's name of a decoded format -> ours; BMP and PPM/PGM are read and answered in PNG;
# other formats Pillow knows (GIF, ...) are refused with their name.
_PIL_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff", "WEBP": "webp"}
_READ_AS_PNG = ("BMP", "PPM")
# Formats that hold 8-bit samples only: 16-bit results are rounded to 8 bits for them.
_EIGHT_BIT_ONLY = ("jpeg", "webp")


class PhotoError(ValueError):  # STAND-IN
    """The data is empty, truncated, not an image or not supported; the message says which in
    plain words."""


class UnsupportedPhoto(PhotoError):
    """The data is not an image in a format the server reads (415)."""


class PhotoTooLarge(PhotoError):
    """The image header announces more pixels than can be decoded safely (413)."""


class RgbEnhancer(Protocol):
    """Anything with :meth:`PhotoEnhancer.enhance_rgb` (the server's queued enhancer)."""

    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray: ...


class PhotoEnhancer:  # STAND-IN
    """One generator on one device, ready to enhance RGB arrays (stand-in for
    ``lptn.photo.pipeline.PhotoEnhancer``).

    Args:
        net: the loaded generator (moved to ``runtime.device``, eval mode).
        runtime: device and precision.
        inference: fast (default, bounded memory: big photos are tiled), exact or graph path.
    """

    def __init__(
        self, net: nn.Module, runtime: Runtime, inference: Optional[InferenceSettings] = None
    ) -> None:
        self.net = net.to(runtime.device).eval()
        self.runtime = runtime
        self.inference = inference or InferenceSettings()
        self._batches = BatchRunner(self)

    @classmethod
    def from_weights(
        cls, weights: Optional[str] = None, device: str = "auto", precision: str = "fp32"
    ) -> PhotoEnhancer:
        """Load ``weights`` (None: the default weights) onto ``device`` in ``precision``."""
        path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
        if weights is None and not path.is_file():
            raise FileNotFoundError(
                f"no built-in weights yet and the default {path} is absent; pass --weights"
            )
        runtime = build_runtime({"device": device}, precision)
        return cls(load_generator(path), runtime)

    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """``H x W x 3`` uint8/uint16 RGB -> enhanced array of the same shape and dtype.

        ``strength`` in [0, 1] blends the input (0) with the full enhancement (1).
        """
        path = self._batches.path
        if isinstance(path, FastLPTN):
            self._batches.check_size(img.shape[0], img.shape[1])
            with torch.inference_mode():
                out = path.enhance_array(img, self.runtime.device)
            return blend(img, out, strength)
        return self._batches([img], [strength])[0]


# ----------------------------------------------------------------------------------------------
# The server's own helpers (they stay after the switch to lptn.photo).
# ----------------------------------------------------------------------------------------------
def blend(img: np.ndarray, enhanced: np.ndarray, strength: float) -> np.ndarray:
    """``img + strength * (enhanced - img)``, rounded to the dtype of ``img``."""
    if strength >= 1.0:
        return enhanced
    mixed = img.astype(np.float32) + np.float32(strength) * (
        enhanced.astype(np.float32) - img.astype(np.float32)
    )
    return np.round(mixed).astype(img.dtype)


class BatchRunner:
    """Runs several equal-size images through an enhancer's network in one call (the server's
    batching on accelerators). Uses only ``enhancer.net``, ``.runtime`` and ``.inference``;
    the network's parameters are shared, not copied.
    """

    def __init__(self, enhancer: Any) -> None:
        self.net: nn.Module = enhancer.net
        self.runtime: Runtime = enhancer.runtime
        settings = getattr(enhancer, "inference", None) or InferenceSettings()
        self.path: Optional[InferencePath] = build_inference_path(
            self.net, settings, self.runtime.precision
        )
        self.min_size = min_input_size(int(getattr(self.net, "num_high", 0)))

    def check_size(self, height: int, width: int) -> None:
        """PhotoError when the network cannot take an image this small."""
        if height < self.min_size or width < self.min_size:
            raise PhotoError(
                f"the image is {width}x{height} pixels; it must be at least "
                f"{self.min_size} pixels on each side"
            )

    def fits(self, batch: int, height: int, width: int) -> bool:
        """True when ``batch`` images of this size run whole within the fast path's memory
        budget (otherwise they are enhanced one by one, tiled as needed)."""
        if not isinstance(self.path, FastLPTN):
            return batch == 1
        return not self.path.plan(batch, height, width, self.runtime.device).tiled

    def __call__(self, imgs: Sequence[np.ndarray], strengths: Sequence[float]) -> List[np.ndarray]:
        """Equal-size ``H x W x 3`` arrays of one dtype -> enhanced arrays, each blended with
        its strength. The batch is one (N, 3, H, W) float32 tensor on the device: callers
        batch only what :meth:`fits`."""
        for img in imgs:
            self.check_size(img.shape[0], img.shape[1])
        x = torch.from_numpy(np.stack([to_float(img) for img in imgs]).transpose(0, 3, 1, 2))
        x = x.contiguous().to(self.runtime.device)
        # The fast and graph paths set the conv stacks' precision themselves.
        precision = contextlib.nullcontext() if self.path is not None else self.runtime.autocast()
        with torch.inference_mode(), precision:
            out = (self.path or self.net)(x)
        top = 65535.0 if imgs[0].dtype == np.uint16 else 255.0
        arrays = (out.float().clamp(0, 1) * top).round().permute(0, 2, 3, 1).cpu().numpy()
        return [blend(img, a.astype(img.dtype), s) for img, a, s in zip(imgs, arrays, strengths)]


@dataclass(frozen=True)
class PhotoInfo:
    """What the header says: our format name (None: readable but answered as PNG) and size."""

    format: Optional[str]
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def probe_photo(data: bytes) -> PhotoInfo:
    """Format and size from the header alone (no pixel decoding), for the server's limits.

    Raises PhotoError for empty data or data that is not an image Pillow recognises.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise PhotoError("the upload is empty: no image data was received")
    try:
        with warnings.catch_warnings():
            # Huge sizes are the caller's to judge (413), not Pillow's decompression warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                fmt = img.format
    except Image.DecompressionBombError as err:
        raise PhotoTooLarge(str(err)) from err
    except UnidentifiedImageError as err:
        raise UnsupportedPhoto(
            "the upload is not an image in a supported format (JPEG, PNG, TIFF or WebP)"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(f"the image header cannot be read: {err}") from err
    if fmt not in _PIL_FORMATS and fmt not in _READ_AS_PNG:
        raise UnsupportedPhoto(
            f"{fmt or 'this'} images are not supported; send JPEG, PNG, TIFF or WebP"
        )
    return PhotoInfo(_PIL_FORMATS.get(fmt or ""), width, height)


def media_type(fmt: str) -> str:
    return FORMATS[fmt][1]


def enhance_photo_bytes(  # STAND-IN
    data: bytes,
    enhancer: RgbEnhancer,
    *,
    strength: float = 1.0,
    out_format: Optional[str] = None,
    jpeg_quality: int = 95,
    output_colour: str = "srgb",
) -> Tuple[bytes, str]:
    """Encoded photo in -> (enhanced photo encoded, its media type).

    ``out_format``: jpeg, png, tiff or webp; None keeps the input's (PNG for other formats).
    8- and 16-bit inputs keep their depth where the output format holds it. ``output_colour``
    is accepted for the pipeline's signature; this implementation writes the decoded values
    as they are (no colour management).
    """
    if out_format is not None and out_format not in FORMATS:
        raise PhotoError(f"unknown output format {out_format!r}; use {', '.join(FORMATS)}")
    info = probe_photo(data)
    fmt = out_format or info.format or "png"
    try:
        img = decode_image(data, "the upload")
    except ImageReadError as err:
        raise PhotoError(
            "the image data cannot be decoded: the file is truncated or corrupt"
        ) from err
    out = enhancer.enhance_rgb(img, strength)
    del img
    if fmt in _EIGHT_BIT_ONLY and out.dtype == np.uint16:
        out = np.round(out / np.float32(257.0)).astype(np.uint8)
    ext = FORMATS[fmt][0]
    if ext == ".webp":
        ok, buf = cv2.imencode(
            ext, cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_WEBP_QUALITY, jpeg_quality]
        )
        if not ok:
            raise PhotoError("the result cannot be encoded as WebP")
        return buf.tobytes(), media_type(fmt)
    return encode_image(out, ext, jpeg_quality=jpeg_quality), media_type(fmt)
