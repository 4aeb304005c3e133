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
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, PngImagePlugin

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
INTEROP_IFD = 0xA005
INTEROP_INDEX = 0x0001  # in the Interop IFD: "R98" DCF basic file (sRGB), "R03" DCF option file
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

# PNG text keywords whose value is carried otherwise (XMP; EXIF / IPTC / ICC raw profiles).
_PNG_XMP_KEY = "XML:com.adobe.xmp"
_PNG_RAW_PROFILE = "Raw profile type "
_TEXT = (b"tEXt", b"zTXt", b"iTXt")
# Standard PNG keywords with an EXIF equivalent, for outputs in other formats.
PNG_TEXT_EXIF_TAGS = {"Author": 0x013B, "Description": 0x010E, "Copyright": 0x8298}

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


def says_adobe_rgb(exif: Image.Exif) -> bool:
    """True for the DCF convention of cameras' Adobe RGB photos: ColorSpace 0xFFFF
    (uncalibrated) and InteropIndex ``R03`` (DCF option file) in the Interop IFD. Read from the
    input's whole EXIF: :func:`portable_exif` leaves the Interop IFD out."""
    try:
        space = exif.get_ifd(EXIF_IFD).get(COLOR_SPACE)
        index = exif.get_ifd(INTEROP_IFD).get(INTEROP_INDEX) if space == 0xFFFF else None
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, struct.error):
        return False  # a damaged Interop IFD says nothing
    if isinstance(index, bytes):
        index = index.decode("latin-1")
    return isinstance(index, str) and index.strip("\0 ") == "R03"


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


class PngText(NamedTuple):
    """One PNG text chunk: ``tEXt`` (Latin-1), ``zTXt`` (compressed) or ``iTXt`` (UTF-8, with
    a language tag and a translated keyword; ``lang`` is None for the other two)."""

    keyword: str
    text: str
    lang: Optional[str] = None
    translated_keyword: str = ""
    compressed: bool = False


def png_text_of(im: Image.Image, data: bytes) -> Tuple[PngText, ...]:
    """The text chunks of a PNG (``im`` opened from ``data``), in file order, without XMP and
    raw profiles (kept as XMP, EXIF, IPTC). A keyword that appears twice keeps its last value
    (Pillow's reading)."""
    spans = [(kind, start, end) for kind, start, end in _png_chunk_spans(data) if kind in _TEXT]
    if not spans:
        return ()
    first_idat = next((s for k, s, _ in _png_chunk_spans(data) if k == b"IDAT"), len(data))
    # Pillow reads the text before the pixels on opening; ``im.text`` would decode the pixels
    # (a second time for 16-bit PNGs) to reach text after them, so only then is it asked.
    after_pixels = any(start > first_idat for _, start, _ in spans)
    source: Any = im.text if after_pixels else im.info  # type: ignore[attr-defined]
    texts: Dict[Any, Any] = dict(source)
    found: Dict[str, PngText] = {}
    for kind, start, end in spans:
        body = data[start : min(end, start + 80)]  # keyword (1-79 bytes), NUL, iTXt flag
        keyword = body.split(b"\0", 1)[0].decode("latin-1")
        if keyword not in texts or keyword == _PNG_XMP_KEY or keyword.startswith(_PNG_RAW_PROFILE):
            continue
        value = texts[keyword]
        if kind == b"iTXt":
            flag = body[len(keyword) + 1 : len(keyword) + 2]  # the compression flag byte
            found[keyword] = PngText(
                keyword,
                str(value),
                str(getattr(value, "lang", None) or ""),
                str(getattr(value, "tkey", None) or ""),
                flag == b"\x01",
            )
        else:
            found[keyword] = PngText(keyword, str(value), compressed=kind == b"zTXt")
    return tuple(found.values())


def exif_with_png_text(exif: Optional[Image.Exif], text: Sequence[PngText]) -> Optional[Image.Exif]:
    """``exif`` with the PNG text that has an EXIF tag (Author -> Artist, Description ->
    ImageDescription, Copyright), for outputs that hold no PNG text; the EXIF's own values win.
    EXIF text is ASCII: a value with other characters is left out rather than mangled."""
    values = {
        t.keyword: t.text
        for t in text
        if t.keyword in PNG_TEXT_EXIF_TAGS and t.text and t.text.isascii()
    }
    if not values:
        return exif
    out = Image.Exif() if exif is None else copy_exif(exif)
    for keyword, value in values.items():
        if PNG_TEXT_EXIF_TAGS[keyword] not in out:
            out[PNG_TEXT_EXIF_TAGS[keyword]] = value
    out[ORIENTATION] = 1
    return out


def png_metadata_chunks(
    icc: Optional[bytes],
    exif: Optional[Image.Exif],
    xmp: Optional[bytes],
    text: Sequence[PngText] = (),
) -> List[bytes]:
    """The ``iCCP`` / ``eXIf`` / ``iTXt`` (XMP) and text chunks Pillow writes for this
    metadata, each as complete chunk bytes (length, type, data, CRC), to be placed into another
    PNG. Each text keeps its chunk type, compression, language tag and translated keyword."""
    info = PngImagePlugin.PngInfo()
    if xmp:
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
    for t in text:
        if t.lang is None:
            info.add_text(t.keyword, t.text, zip=t.compressed)
        else:
            info.add_itxt(t.keyword, t.text, t.lang, t.translated_keyword, zip=t.compressed)
    buf = io.BytesIO()
    kwargs: Dict[str, Any] = {"pnginfo": info}
    if icc:
        kwargs["icc_profile"] = icc
    if exif is not None:
        kwargs["exif"] = exif
    Image.new("L", (1, 1)).save(buf, "PNG", **kwargs)
    kinds = (b"iCCP", b"eXIf", b"iTXt", b"tEXt", b"zTXt")
    return [c for c in png_chunks(buf.getvalue()) if c[4:8] in kinds]


def insert_png_chunks(png: bytes, chunks: List[bytes]) -> bytes:
    """``png`` with ``chunks`` placed right after its header chunk (where iCCP must be)."""
    parts = png_chunks(png)
    if not parts or parts[0][4:8] != b"IHDR":
        raise ValueError("not a PNG stream")
    return png[:8] + parts[0] + b"".join(chunks) + b"".join(parts[1:])


def png_chunks(png: bytes) -> List[bytes]:
    """The chunks of a PNG stream after its signature, each as complete chunk bytes."""
    return [png[start - 8 : end + 4] for _, start, end in _png_chunk_spans(png)]


def _png_chunk_spans(png: bytes) -> Iterator[Tuple[bytes, int, int]]:
    """(chunk type, start, end) of each chunk's data, without copying any of it."""
    pos = 8  # after the signature
    while pos + 8 <= len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        yield kind, pos + 8, min(pos + 8 + length, len(png))
        pos += 12 + length
