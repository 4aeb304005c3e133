"""IPTC-IIM (keywords, by-line, city, caption...): read from inputs, written into outputs.

A :class:`~lptn.photo.photo_file.Photo` carries its IPTC as the IIM record stream, the bytes
that TIFF tag 33723 and Photoshop resource 0x0404 hold. Pillow hands them over for JPEG (APP13)
and TIFF inputs. Writing them into JPEG (APP13) and PNG (a ``Raw profile type iptc`` zTXt
chunk) is left to exiv2 (the ``exiv2`` binding, extra ``tiff-exif``), and so is reading the PNG
chunk: the binding has no IIM codec of its own, so IIM bytes reach exiv2, and leave it, through
a one-pixel TIFF whose tag 33723 holds them. TIFF outputs take tag 33723 directly (no exiv2).
WebP and BMP cannot hold IPTC.
"""

from __future__ import annotations

import io
from typing import Any, List, Optional

import numpy as np
from PIL import Image

from lptn.photo.metadata import png_chunks
from lptn.photo.tiff_exif import exiv2_available

IPTC_TAG = 33723  # TIFF IPTC-NAA
PHOTOSHOP_IPTC = 0x0404  # Photoshop image resource holding the IIM
PNG_IPTC_KEY = "Raw profile type iptc"

IPTC_EXTRA_HINT = (
    "IPTC (keywords, by-line, city, caption...) in JPEG and PNG needs the optional extra "
    "'tiff-exif' (pip install 'lptn[tiff-exif]', which installs exiv2)"
)


def iptc_of(im: Image.Image, data: bytes, fmt: str) -> Optional[bytes]:
    """The IIM bytes of an input (``im`` opened from ``data``); None when it has none.

    PNG inputs need exiv2; without it their IPTC is not read (see :func:`png_has_iptc`).
    """
    if fmt == "JPEG":
        resources: Any = im.info.get("photoshop") or {}
        value = resources.get(PHOTOSHOP_IPTC)
        return bytes(value) if value else None
    if fmt == "TIFF" and IPTC_TAG in im.tag_v2:  # type: ignore[attr-defined]
        return _tiff_iptc(data)
    if fmt == "PNG" and png_has_iptc(im) and exiv2_available():
        return _png_iptc(im)
    return None


def png_has_iptc(im: Image.Image) -> bool:
    """True when a PNG input has an IPTC raw profile chunk (ImageMagick's, exiv2's)."""
    return PNG_IPTC_KEY in im.info


def _tiff_iptc(tiff: bytes) -> Optional[bytes]:
    """Tag 33723 of a TIFF's first page as bytes (tifffile reads it so whether it is typed
    UNDEFINED or, as exiv2 and Photoshop write it, LONG; Pillow keeps one LONG of it)."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(tiff)) as tif:
        page = tif.pages[0]
        tag = page.tags.get(IPTC_TAG) if isinstance(page, tifffile.TiffPage) else None
        value = None if tag is None else tag.value
    return bytes(value) if isinstance(value, (bytes, bytearray)) and value else None


def _png_iptc(im: Image.Image) -> Optional[bytes]:
    import exiv2

    # Pillow kept only the chunk's text; exiv2 decodes it from a PNG holding just that chunk.
    carrier = io.BytesIO()
    info = _png_info_with(PNG_IPTC_KEY, str(im.info[PNG_IPTC_KEY]))
    Image.new("L", (1, 1)).save(carrier, "PNG", pnginfo=info)
    try:
        source = exiv2.ImageFactory.open(carrier.getvalue())
        source.readMetadata()
        return _iim_from(source.iptcData())
    except exiv2.Exiv2Error:
        return None


def _png_info_with(key: str, text: str) -> Any:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(key, text, zip=True)
    return info


def _iim_from(datasets: Any) -> Optional[bytes]:
    """exiv2 IPTC data -> IIM bytes, through a one-pixel TIFF (exiv2 writes tag 33723)."""
    import exiv2

    if not len(datasets):
        return None
    carrier = exiv2.ImageFactory.open(_tiff_carrier(None))
    carrier.readMetadata()
    target = carrier.iptcData()
    for datum in datasets:
        target.add(datum)
    carrier.writeMetadata()
    return _tiff_iptc(bytes(carrier.io().data()))


def _tiff_carrier(iim: Optional[bytes]) -> bytes:
    import tifffile

    extratags: List[Any] = [] if iim is None else [(IPTC_TAG, 7, len(iim), iim, True)]
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((1, 1), np.uint8), metadata=None, extratags=extratags)
    return buf.getvalue()


def _exiv2_carrier(iim: bytes) -> Any:
    """An exiv2 image (a one-pixel TIFF) whose ``iptcData()`` holds the datasets of ``iim``."""
    import exiv2

    carrier = exiv2.ImageFactory.open(_tiff_carrier(iim))
    carrier.readMetadata()
    return carrier


def add_iptc(data: bytes, iim: bytes) -> bytes:
    """A JPEG file (``data``) with the IPTC datasets of ``iim`` in an APP13 segment.

    Its other metadata keep their content: exiv2 rewrites the segments it read, the XMP packet
    as it is. Needs exiv2 (check :func:`exiv2_available`).

    Raises:
        ValueError: exiv2 cannot read the IPTC or write the file.
    """
    import exiv2

    try:
        carrier = _exiv2_carrier(iim)
        image = exiv2.ImageFactory.open(data)
        image.readMetadata()
        image.writeXmpFromPacket(True)
        target = image.iptcData()
        for datum in carrier.iptcData():
            target.add(datum)
        image.writeMetadata()
        return bytes(image.io().data())
    except exiv2.Exiv2Error as err:
        raise ValueError(f"exiv2 could not write the IPTC: {err}") from err


def png_iptc_chunk(iim: bytes) -> bytes:
    """The ``zTXt`` chunk (``Raw profile type iptc``, complete with length and CRC) that exiv2
    writes for ``iim`` into a PNG, to be placed into another PNG. Needs exiv2.

    Raises:
        ValueError: exiv2 cannot read the IPTC or write the chunk.
    """
    import exiv2

    blank = io.BytesIO()
    Image.new("L", (1, 1)).save(blank, "PNG")
    try:
        carrier = _exiv2_carrier(iim)
        image = exiv2.ImageFactory.open(blank.getvalue())
        image.readMetadata()
        target = image.iptcData()
        for datum in carrier.iptcData():
            target.add(datum)
        image.writeMetadata()
        png = bytes(image.io().data())
    except exiv2.Exiv2Error as err:
        raise ValueError(f"exiv2 could not write the IPTC: {err}") from err
    for chunk in png_chunks(png):
        if chunk[4:8] in (b"zTXt", b"tEXt", b"iTXt") and chunk[8:].startswith(b"Raw profile"):
            return chunk
    raise ValueError("exiv2 wrote no IPTC chunk")
