"""The one place where lptn-serve meets the photo pipeline (:mod:`lptn.photo`).

Decoding, orientation, metadata, colour management, grey, alpha, bit depth and encoding are
:func:`lptn.photo.enhance_photo_bytes`'s, so the server's results are ``lptn-enhance``'s. The
server adds what it needs before and around the pipeline: :func:`probe_photo` (format and
pixel count from the header, before decoding, for 413/415), :class:`UnsupportedPhoto` and
:class:`PhotoTooLarge` (subclasses of :class:`lptn.photo.PhotoError`), the output format
table, :class:`BatchRunner` (equal-size RGB photos through the network at once, on
accelerators; blended with :func:`lptn.photo.enhancer.blend` like a single photo) and
:func:`preview_photo_bytes` (what the page shows: a small 8-bit sRGB PNG of any input).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from lptn.data.image_io import to_float
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.settings import InferencePath, build_inference_path
from lptn.photo import (
    PhotoEnhancer,
    PhotoError,
    decode_photo,
    enhance_photo,
    enhance_photo_bytes,
    raw_file,
)
from lptn.photo.enhancer import blend
from lptn.photo.photo_file import HEIF_EXTRA, MEDIA_TYPES, WRITE_FORMATS
from lptn.photo.pipeline import MAX_BYTES_PIXELS, ArrayEnhancer
from lptn.photo.settings import check_strength
from lptn.platform.runtime import Runtime

__all__ = [
    "FORMATS",
    "BatchRunner",
    "PhotoEnhancer",
    "PhotoError",
    "PhotoInfo",
    "PhotoTooLarge",
    "UnsupportedPhoto",
    "check_strength",
    "enhance_photo_bytes",
    "media_type",
    "preview_photo_bytes",
    "probe_photo",
]

# Output formats: the ``format`` query value -> the pipeline's format name (what it writes).
FORMATS: Dict[str, str] = {name.lower(): name for name in WRITE_FORMATS}
# Pillow's name of a decoded format -> the pipeline's (what it reads; HEIC is answered in JPEG).
_READ_FORMATS = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "TIFF": "TIFF",
    "WEBP": "WEBP",
    "BMP": "BMP",
    "HEIF": "HEIF",
}
READABLE = "JPEG, PNG, TIFF, WebP, BMP, HEIC or a camera RAW file (DNG, CR2, CR3...)"
# HEIF files start with a box of type ``ftyp`` (byte 4) whose major brand (byte 8) is one of
# these (ISO/IEC 23008-12); MP4 and other ISO media files have other brands.
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


class UnsupportedPhoto(PhotoError):
    """The data is not an image in a format the server reads (415)."""


class PhotoTooLarge(PhotoError):
    """The image header announces more pixels than can be decoded safely (413)."""


def media_type(fmt: str) -> str:
    """``jpeg``, ``png``, ... (a :data:`FORMATS` key) -> its media type."""
    return MEDIA_TYPES[FORMATS[fmt]]


def _heif_opener() -> bool:
    """Register pillow-heif's opener with Pillow; False when the ``heif`` extra is missing."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


@dataclass(frozen=True)
class PhotoInfo:
    """What the header says: the pipeline's format name (``JPEG``, ..., ``HEIF``) and size."""

    format: str
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def probe_photo(data: bytes) -> PhotoInfo:
    """Format and size from the header alone (no pixel decoding), for the server's limits.

    Raises PhotoError for empty data or a header that cannot be read, UnsupportedPhoto for
    data that is not an image the pipeline reads (HEIC or RAW without its extra included),
    PhotoTooLarge when Pillow refuses the size outright.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise PhotoError("the upload is empty: no image data was received")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS and not _heif_opener():
        raise UnsupportedPhoto(f"this server cannot read the upload: {HEIF_EXTRA}")
    if raw_file.is_raw(data):  # before Pillow, which would take a DNG's preview for the photo
        try:
            height, width = raw_file.raw_size(data, "the upload")
        except PhotoError as err:  # no rawpy, or data LibRaw does not read
            raise UnsupportedPhoto(str(err)) from err
        return PhotoInfo("RAW", width, height)
    try:
        with warnings.catch_warnings():
            # Huge sizes are the caller's to judge (413), not Pillow's decompression warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                fmt = str(img.format)
    except Image.DecompressionBombError as err:
        raise PhotoTooLarge(str(err)) from err
    except UnidentifiedImageError as err:
        raise UnsupportedPhoto(
            f"the upload is not an image in a supported format ({READABLE})"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise PhotoError(f"the image header cannot be read: {err}") from err
    if fmt not in _READ_FORMATS:
        raise UnsupportedPhoto(f"{fmt} images are not supported; send {READABLE}")
    return PhotoInfo(_READ_FORMATS[fmt], width, height)


class BatchRunner:
    """Runs several equal-size RGB images through a :class:`PhotoEnhancer`'s network in one
    call (the server's batching on accelerators); the network's parameters are shared.

    Each result equals ``enhancer.enhance_rgb(img, strength)`` up to the rounding of float32
    sums taken in another order (at most 1 in the last place of the output): full strength is
    rounded once to the input's depth; a partial strength blends the input with the 16-bit
    enhanced image by :func:`lptn.photo.enhancer.blend`, as ``enhance_rgb`` does.
    """

    def __init__(self, enhancer: PhotoEnhancer) -> None:
        self.net: nn.Module = enhancer.net
        self.runtime: Runtime = enhancer.runtime
        # A path of its own: the fast path's buffers are not shared between threads' calls.
        self.path: Optional[InferencePath] = build_inference_path(
            self.net, enhancer.inference, self.runtime.precision
        )
        self.min_size = enhancer.min_size

    def check_size(self, height: int, width: int) -> None:
        """PhotoError when the network cannot take an image this small."""
        if min(height, width) < self.min_size:
            raise PhotoError(
                f"{width}x{height} is too small: this model needs at least "
                f"{self.min_size}x{self.min_size} pixels"
            )

    def fits(self, batch: int, height: int, width: int) -> bool:
        """True when ``batch`` images of this size run whole within the fast path's memory
        budget (otherwise they are enhanced one by one, tiled as needed)."""
        if not isinstance(self.path, FastLPTN):
            return batch == 1
        return not self.path.plan(batch, height, width, self.runtime.device).tiled

    def __call__(self, imgs: Sequence[np.ndarray], strengths: Sequence[float]) -> List[np.ndarray]:
        """Equal-size ``H x W x 3`` uint8/uint16 arrays of one dtype -> enhanced arrays of that
        dtype, each blended with its strength. The batch is one (N, 3, H, W) float32 tensor on
        the device: callers batch only what :meth:`fits`."""
        values = [check_strength(s) for s in strengths]
        for img in imgs:
            self.check_size(img.shape[0], img.shape[1])
        # A partial strength is blended with the 16-bit result of the 16-bit input, as in
        # PhotoEnhancer.enhance_fine (8-bit inputs widened by 257).
        wide = [
            img.astype(np.uint16) * np.uint16(257) if 0 < s < 1 and img.dtype == np.uint8 else img
            for img, s in zip(imgs, values)
        ]
        x = torch.from_numpy(np.stack([to_float(w) for w in wide]).transpose(0, 3, 1, 2))
        x = x.contiguous().to(self.runtime.device)
        # The fast and graph paths set the conv stacks' precision themselves.
        precision = contextlib.nullcontext() if self.path is not None else self.runtime.autocast()
        with torch.inference_mode(), precision:
            out = (self.path or self.net)(x)
        arrays = out.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        results = []
        for img, s, y in zip(imgs, values, arrays):
            if s == 0.0:
                results.append(img.copy())
            elif s == 1.0:
                top = np.float32(65535.0 if img.dtype == np.uint16 else 255.0)
                results.append(np.round(y * top).astype(img.dtype))
            else:
                results.append(blend(img, np.round(y * np.float32(65535.0)).astype(np.uint16), s))
        return results


# Long side of the page's previews in pixels: sharp in a card on a 2x screen, small to send.
PREVIEW_LONG_SIDE = 1024


class _Unchanged:
    """An :class:`~lptn.photo.pipeline.ArrayEnhancer` that returns its input: the pipeline's
    colour handling without the network, for the preview of the photo itself."""

    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        return img

    def enhance_grey(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        return img


def preview_photo_bytes(
    data: bytes, enhancer: ArrayEnhancer, *, strength: float, long_side: int = PREVIEW_LONG_SIDE
) -> bytes:
    """Encoded photo -> an 8-bit sRGB PNG that any browser shows: upright, the enhanced photo
    at ``strength`` (0: the photo itself, without the network), scaled down to at most
    ``long_side`` pixels on its long side. Grey stays grey, alpha is kept.

    The scaling is linear, so previews at strength 0 and 1 blend to the preview at any
    strength (up to rounding): the page blends them live."""
    from PIL import Image

    strength = check_strength(strength)
    photo = decode_photo(data, "photo", max_pixels=MAX_BYTES_PIXELS)
    seen = enhancer if strength > 0 else _Unchanged()
    out = enhance_photo(photo, seen, strength=strength, output_colour="srgb")
    layers = [out.pixels] if out.alpha is None else [out.pixels, out.alpha]
    if out.pixels.dtype == np.uint16:
        layers = [np.round(layer / np.float32(257.0)).astype(np.uint8) for layer in layers]
    if out.alpha is None:
        im = Image.fromarray(layers[0])
    else:
        stacked = np.dstack([layers[0], layers[1]])
        im = Image.fromarray(stacked, "LA" if out.is_grey else "RGBA")
    im.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
