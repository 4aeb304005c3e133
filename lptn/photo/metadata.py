"""EXIF orientation and the metadata that travels from an input photo to its output.

Orientation values are those of the EXIF / TIFF ``Orientation`` tag (0x0112): 1 upright,
2 mirrored, 3 turned 180 degrees, 4 flipped, 5 transposed, 6 stored turned 90 degrees
anticlockwise (shown after turning it clockwise), 7 transversed, 8 stored turned 90 degrees
clockwise.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Any, Dict, List, Optional

import numpy as np
from PIL import Image, PngImagePlugin

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
INTEROP_IFD = 0xA005
COLOR_SPACE = 0xA001  # 1 = sRGB, 0xFFFF = uncalibrated (how cameras mark Adobe RGB)
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
SUB_IFDS = (EXIF_IFD, GPS_IFD)

# IFD0 tags that describe the photo rather than how its pixels are stored: a TIFF input's
# IFD0 also holds strip offsets, sample formats... which must not be copied to an output.
DESCRIPTIVE_IFD0_TAGS = (
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    0x011A,  # XResolution
    0x011B,  # YResolution
    0x0128,  # ResolutionUnit
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
)

_XMP_ORIENTATION = re.compile(rb'(tiff:Orientation\s*=\s*["\']|<tiff:Orientation>)\s*[1-8]')


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """``HxW`` or ``HxWxC`` array stored with ``orientation`` -> the upright array."""
    if orientation in (5, 6, 7, 8):
        axes = (1, 0) + tuple(range(2, img.ndim))
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = img.transpose(axes)
    elif orientation == 6:  # turn clockwise: transpose, then mirror left-right
        img = img.transpose(axes)[:, ::-1]
    elif orientation == 7:
        img = img.transpose(axes)[::-1, ::-1]
    elif orientation == 8:  # turn anticlockwise: transpose, then flip top-bottom
        img = img.transpose(axes)[::-1]
    return np.ascontiguousarray(img)


def read_orientation(exif: Image.Exif) -> int:
    """The orientation tag, 1 when absent or out of range."""
    value = exif.get(ORIENTATION, 1)
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def upright_xmp(xmp: Optional[bytes]) -> Optional[bytes]:
    """XMP with any ``tiff:Orientation`` set to 1, so that XMP-reading viewers agree."""
    if not xmp:
        return xmp
    return _XMP_ORIENTATION.sub(lambda m: m.group(1) + b"1", xmp)


def portable_exif(exif: Image.Exif) -> Optional[Image.Exif]:
    """The descriptive part of ``exif`` (camera, dates, resolution, Exif and GPS sub-IFDs) with
    the orientation reset to 1; None when nothing is left to keep."""
    out = Image.Exif()
    for tag in DESCRIPTIVE_IFD0_TAGS:
        if tag in exif:
            out[tag] = exif[tag]
    for tag in SUB_IFDS:
        sub: Dict[int, Any] = dict(exif.get_ifd(tag)) if tag in exif else {}
        # The interoperability pointer is an offset into the source file: meaningless here.
        sub.pop(INTEROP_IFD, None)
        if sub:
            out.get_ifd(tag).update(sub)
    if not len(out) and not any(out.get_ifd(tag) for tag in SUB_IFDS):
        return None
    out[ORIENTATION] = 1
    return out


def copy_exif(exif: Image.Exif) -> Image.Exif:
    """An independent copy of ``exif`` (IFD0 and the Exif / GPS sub-IFDs)."""
    out = Image.Exif()
    for tag, value in exif.items():
        if tag not in SUB_IFDS:
            out[tag] = value
    for tag in SUB_IFDS:
        sub = exif.get_ifd(tag)
        if sub:
            out.get_ifd(tag).update(sub)
    return out


def exif_for_output(exif: Optional[Image.Exif], width: int, height: int) -> Optional[Image.Exif]:
    """A copy of ``exif`` whose pixel-dimension tags give the output's (upright) size."""
    if exif is None:
        return None
    out = copy_exif(exif)
    sub = out.get_ifd(EXIF_IFD)
    if PIXEL_X_DIMENSION in sub:
        sub[PIXEL_X_DIMENSION] = width
    if PIXEL_Y_DIMENSION in sub:
        sub[PIXEL_Y_DIMENSION] = height
    return out


def mark_srgb(exif: Optional[Image.Exif]) -> Optional[Image.Exif]:
    """A copy of ``exif`` whose colour-space tag says sRGB (cameras mark Adobe RGB photos as
    'uncalibrated'), for outputs converted to sRGB."""
    if exif is None:
        return None
    out = copy_exif(exif)
    sub = out.get_ifd(EXIF_IFD)
    if COLOR_SPACE in sub:
        sub[COLOR_SPACE] = 1
    return out


def png_metadata_chunks(
    icc: Optional[bytes], exif: Optional[Image.Exif], xmp: Optional[bytes]
) -> List[bytes]:
    """The ``iCCP`` / ``eXIf`` / ``iTXt`` (XMP) chunks Pillow writes for this metadata, each as
    complete chunk bytes (length, type, data, CRC), to be placed into another PNG."""
    info = PngImagePlugin.PngInfo()
    if xmp:
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
    buf = io.BytesIO()
    kwargs: Dict[str, Any] = {"pnginfo": info}
    if icc:
        kwargs["icc_profile"] = icc
    if exif is not None:
        kwargs["exif"] = exif
    Image.new("L", (1, 1)).save(buf, "PNG", **kwargs)
    return [c for c in _png_chunks(buf.getvalue()) if c[4:8] in (b"iCCP", b"eXIf", b"iTXt")]


def insert_png_chunks(png: bytes, chunks: List[bytes]) -> bytes:
    """``png`` with ``chunks`` placed right after its header chunk (where iCCP must be)."""
    parts = _png_chunks(png)
    if not parts or parts[0][4:8] != b"IHDR":
        raise ValueError("not a PNG stream")
    return png[:8] + parts[0] + b"".join(chunks) + b"".join(parts[1:])


def _png_chunks(png: bytes) -> List[bytes]:
    chunks = []
    pos = 8  # after the signature
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        end = pos + 12 + length
        chunks.append(png[pos:end])
        pos = end
    return chunks
