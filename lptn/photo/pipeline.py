"""One photo through the enhancer: decode, check, colour management in, enhance, encode.

:func:`enhance_encoded` is the one pipeline: ``lptn-enhance`` (files), ``lptn-serve`` and
:func:`enhance_photo_bytes` (bytes) all run it, so they give the same bytes for the same input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Protocol, Tuple, Union

import numpy as np

from lptn.photo.colour import from_srgb, is_srgb, profile_space, srgb_profile_bytes, to_srgb
from lptn.photo.errors import PhotoError
from lptn.photo.metadata import mark_srgb
from lptn.photo.photo_file import (
    MEDIA_TYPES,
    WRITE_FORMATS,
    Photo,
    decode_photo,
    encode_photo,
    format_name,
    output_format_for,
    read_photo,
)
from lptn.photo.settings import (
    OUTPUT_COLOURS,
    PhotoSettings,
    check_output_colour,
    check_strength,
)

__all__ = [
    "OUTPUT_COLOURS",
    "ArrayEnhancer",
    "check_writable",
    "enhance_encoded",
    "enhance_photo",
    "enhance_photo_bytes",
]
_DEFAULTS = PhotoSettings()
# enhance_photo_bytes refuses larger photos (the default --max-megapixels): its callers hand
# it data from elsewhere.
MAX_BYTES_PIXELS: int = _DEFAULTS.max_pixels or 0


class ArrayEnhancer(Protocol):
    """What :func:`enhance_photo` calls: a :class:`~lptn.photo.enhancer.PhotoEnhancer`, or an
    object with the same results such as lptn-serve's queue in front of one."""

    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray: ...

    def enhance_grey(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray: ...


def enhance_photo(
    photo: Photo, enhancer: ArrayEnhancer, *, strength: float = 1.0, output_colour: str = "srgb"
) -> Photo:
    """The enhanced photo, with the input's metadata and alpha.

    A photo tagged with another RGB profile (Adobe RGB, ProPhoto, Display P3) is converted to
    sRGB for the network; ``output_colour='srgb'`` (default) writes the result in sRGB with an
    sRGB profile, ``'input'`` converts it back to the input's profile. Grey photos stay grey
    and keep their profile; untagged photos are taken as sRGB and stay untagged.
    """
    check_output_colour(output_colour)
    strength = check_strength(strength)
    if photo.is_grey:
        out = enhancer.enhance_grey(photo.pixels, strength)
        # a grey file may only carry a grey profile (PNG and JPEG readers reject others)
        keep = photo.icc if photo.icc and profile_space(photo.icc) == "GRAY" else None
        return photo.with_pixels(out, icc=keep)
    icc = photo.icc
    if icc and profile_space(icc) != "RGB":
        raise PhotoError(f"the embedded colour profile is for {profile_space(icc)} data, not RGB")
    out = enhancer.enhance_rgb(to_srgb(photo.pixels, icc), strength)
    if is_srgb(icc):
        return photo.with_pixels(out)
    if output_colour == "input":
        return photo.with_pixels(from_srgb(out, icc))
    return photo.with_pixels(out, icc=srgb_profile_bytes(), exif=mark_srgb(photo.exif))


def check_writable(photo: Photo, fmt: str) -> None:
    """Refuse, before any work, an output ``fmt`` that cannot hold ``photo``."""
    if fmt not in WRITE_FORMATS:
        raise PhotoError(f"{fmt} cannot be written; use one of {', '.join(WRITE_FORMATS)}")
    if fmt == "JPEG" and photo.alpha is not None:
        raise PhotoError("JPEG cannot hold transparency; ask for PNG, TIFF or WebP output")


def enhance_encoded(
    source: Union[bytes, Path],
    enhancer: ArrayEnhancer,
    settings: PhotoSettings,
    *,
    out_format: Optional[str] = None,
    max_pixels: Optional[int] = None,
    on_decoded: Optional[Callable[[Photo], None]] = None,
) -> Tuple[bytes, str]:
    """Encoded photo (bytes, or a file's path) -> (encoded enhanced photo, its media type).

    The output format is ``out_format`` (``jpeg``, ``png``...; None: the input's, JPEG for
    HEIC, ``settings.raw_format`` for RAW), refused before any work when it cannot hold the
    photo. ``max_pixels`` (None: ``settings.max_pixels``) is checked from the header before
    decoding; ``on_decoded`` sees the decoded photo before it is enhanced (to log its size).

    Raises:
        PhotoError: unreadable or unsupported data, a photo too small for the network or too
            large, an output format that cannot hold it.
    """
    limit = settings.max_pixels if max_pixels is None else max_pixels
    if isinstance(source, bytes):
        photo = decode_photo(source, "photo", max_pixels=limit)
    else:
        photo = read_photo(source, max_pixels=limit)
    if out_format:
        fmt = format_name(out_format)
    else:
        fmt = output_format_for(photo.format, settings.raw_format)
    check_writable(photo, fmt)
    if on_decoded is not None:
        on_decoded(photo)
    out = enhance_photo(
        photo, enhancer, strength=settings.strength, output_colour=settings.output_colour
    )
    del photo  # the input's memory is free again before encoding the output
    return encode_photo(out, fmt, jpeg_quality=settings.jpeg_quality), MEDIA_TYPES[fmt]


def enhance_photo_bytes(
    data: bytes,
    enhancer: ArrayEnhancer,
    *,
    strength: float = _DEFAULTS.strength,
    out_format: Optional[str] = None,
    jpeg_quality: int = _DEFAULTS.jpeg_quality,
    output_colour: str = _DEFAULTS.output_colour,
) -> Tuple[bytes, str]:
    """Encoded photo in -> (encoded enhanced photo, its media type such as ``image/jpeg``).

    ``out_format`` (``jpeg``, ``png``, ``tiff``, ``webp``, ``bmp``; None = the input's format,
    JPEG for HEIC). Orientation, EXIF, XMP, ICC, alpha, grey and bit depth are handled as in
    :func:`enhance_photo` and :func:`~lptn.photo.photo_file.encode_photo`; the options are
    checked as :class:`~lptn.photo.settings.PhotoSettings` checks them.

    Raises:
        PhotoError: empty, truncated, non-image or unsupported data, a bad option, a photo
            too small for the network or over :data:`MAX_BYTES_PIXELS` pixels.

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> from skimage import data
        >>> from lptn.photo.enhancer import PhotoEnhancer
        >>> enhancer = PhotoEnhancer.from_weights(device="cpu")
        >>> jpeg = io.BytesIO()
        >>> Image.fromarray(data.astronaut()[:64, :48]).save(jpeg, "JPEG", quality=90)
        >>> out, media_type = enhance_photo_bytes(jpeg.getvalue(), enhancer, out_format="png")
        >>> media_type, out[1:4]  # the PNG signature
        ('image/png', b'PNG')
        >>> Image.open(io.BytesIO(out)).size  # (width, height), as the input
        (48, 64)
        >>> enhance_photo_bytes(b"not a photo", enhancer)
        Traceback (most recent call last):
        ...
        lptn.photo.errors.PhotoError: ...
    """
    settings = PhotoSettings.checked(
        strength=strength, jpeg_quality=jpeg_quality, output_colour=output_colour
    )
    return enhance_encoded(
        data, enhancer, settings, out_format=out_format, max_pixels=MAX_BYTES_PIXELS
    )
