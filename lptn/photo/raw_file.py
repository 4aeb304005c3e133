"""RAW camera files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2...) -> upright 16-bit sRGB pixels
and the camera's EXIF, for :mod:`lptn.photo.photo_file`.

LibRaw renders the sensor data (through its Python binding rawpy: the optional extra ``raw``,
``pip install 'lptn[raw]'``) with the fixed parameters of :data:`RAW_RENDERING`: a neutral,
repeatable development, not Lightroom's or the camera's (no lens profile, no tone curve, no
noise reduction, no sharpening). The EXIF (camera, lens, dates, exposure, GPS) is read with
exiv2 (extra ``tiff-exif``), which knows every RAW container, or, without it, with Pillow for
the TIFF-structured RAWs (DNG, CR2, NEF, ARW, PEF...). Maker notes are not kept: their offsets
point into the RAW file.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from PIL import Image, TiffImagePlugin

from lptn.photo.errors import PhotoError
from lptn.photo.metadata import DESCRIPTIVE_IFD0_TAGS, portable_exif
from lptn.photo.tiff_exif import exiv2_available

RAW_EXTRA = (
    "RAW photos need the optional extra 'raw' (pip install 'lptn[raw]', which installs rawpy, "
    "the binding of LibRaw)"
)
RAW_EXIF_HINT = (
    "the EXIF of RAW files that are not TIFF-structured (CR3, RAF, ORF, RW2...) is read with "
    "the optional extra 'tiff-exif' (pip install 'lptn[tiff-exif]', which installs exiv2)"
)
# File name extensions of RAW files LibRaw reads (lower case).
RAW_EXTENSIONS = (
    ".dng",  # Adobe DNG (also Leica, Pentax, Ricoh, phones); FiveK's originals
    ".cr2",
    ".cr3",  # Canon
    ".nef",
    ".nrw",  # Nikon
    ".arw",
    ".srf",
    ".sr2",  # Sony
    ".raf",  # Fujifilm
    ".orf",  # Olympus / OM System
    ".rw2",  # Panasonic
    ".pef",  # Pentax
    ".srw",  # Samsung
    ".3fr",  # Hasselblad
    ".iiq",  # Phase One
    ".erf",  # Epson
    ".rwl",  # Leica
)
# How LibRaw develops a RAW (rawpy.Params names). Camera white balance (the as-shot one the
# camera stored; daylight when it stored none); no automatic brightening, so exposure is the
# photographer's; AHD demosaicing (LibRaw's default, good at edges); highlights clipped; the
# camera's colour matrix into sRGB primaries; the sRGB curve (power 2.4, toe slope 12.92,
# instead of LibRaw's default BT.709 curve); 16 bits per sample; the file's orientation
# applied (user_flip None), so the pixels are upright. The enum values are looked up in rawpy.
RAW_RENDERING: Dict[str, Any] = {
    "demosaic_algorithm": "AHD",
    "use_camera_wb": True,
    "use_auto_wb": False,
    "no_auto_bright": True,
    "bright": 1.0,
    "highlight_mode": "Clip",
    "output_color": "sRGB",
    "gamma": (2.4, 12.92),
    "output_bps": 16,
    "user_flip": None,
    "half_size": False,
    "median_filter_passes": 0,
}

# What a RAW input is written as (``lptn-enhance --raw-format``); the first is the default:
# 16 bits keep the RAW's depth for further editing.
RAW_OUTPUT_FORMATS = ("TIFF", "PNG", "JPEG")
# How much of a file's start :func:`is_raw` needs to see a DNG's first directory.
HEAD_BYTES = 65536
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_DNG_VERSION = 50706
_NEW_SUBFILE_TYPE = 254  # bit 0: a reduced-resolution (preview) image
_PHOTOMETRIC = 262
_SUB_IFDS = 330
_RAW_PHOTOMETRIC = (32803, 34892)  # colour filter array, linear raw
_RAW_HINT_TAGS = (_DNG_VERSION, _NEW_SUBFILE_TYPE, _PHOTOMETRIC, _SUB_IFDS)
_MAKER_NOTE = 0x927C
_INTEROP_IFD = 0xA005


@dataclass
class RawPhoto:
    """A developed RAW: ``pixels`` ``HxWx3`` uint16 sRGB, upright; ``exif`` the camera's
    (orientation 1) or None; ``exif_note`` says why no EXIF could be read, when it could not."""

    pixels: np.ndarray
    exif: Optional[Image.Exif]
    exif_note: Optional[str] = None


def is_raw(head: bytes, name: str = "") -> bool:
    """True when ``name`` has a RAW extension or ``head`` (the start of the file: all of it, or
    at least its first :data:`HEAD_BYTES`) is a RAW file's: CR2, CR3, RAF, ORF, RW2, or a TIFF
    whose first directory holds DNGVersion (DNG), colour-filter-array samples (PEF...) or only
    a preview with the main image in a sub-directory (NEF...). A RAW file that looks like none
    of these is known by its extension."""
    if Path(name).suffix.lower() in RAW_EXTENSIONS:
        return True
    if head[:4] in _TIFF_MAGIC:
        if head[8:10] == b"CR":
            return True
        ifd = _first_ifd(head)
        preview_first = bool(int(ifd.get(_NEW_SUBFILE_TYPE, 0)) & 1) and _SUB_IFDS in ifd
        return _DNG_VERSION in ifd or ifd.get(_PHOTOMETRIC) in _RAW_PHOTOMETRIC or preview_first
    return (
        head.startswith(b"FUJIFILMCCD-RAW")
        or head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")
        or (head[4:8] == b"ftyp" and head[8:12] == b"crx ")
    )


def _first_ifd(head: bytes) -> Dict[int, Any]:
    """A TIFF's first directory, tag -> value (empty when it lies beyond ``head``)."""
    try:
        ifd = TiffImagePlugin.ImageFileDirectory_v2(head[:8])
        fp = io.BytesIO(head)
        fp.seek(ifd.next)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # values beyond ``head`` are not needed here
            ifd.load(fp)
            return {tag: ifd.get(tag) for tag in _RAW_HINT_TAGS if tag in ifd}
    except (SyntaxError, ValueError, OSError, struct.error):
        return {}


def _rawpy(name: str) -> Any:
    try:
        import rawpy
    except ImportError as err:
        raise PhotoError(f"{name}: {RAW_EXTRA}") from err
    return rawpy


def _open(source: Union[bytes, str], name: str) -> Any:
    rawpy = _rawpy(name)
    try:
        return rawpy.imread(io.BytesIO(source) if isinstance(source, bytes) else source)
    except rawpy.LibRawError as err:
        raise PhotoError(
            f"{name}: not a RAW file LibRaw reads, or truncated ({_libraw_reason(err)})"
        ) from err


def _libraw_reason(err: Exception) -> str:
    """LibRaw's message (rawpy passes it as bytes) or the error's name."""
    reason = err.args[0] if err.args else ""
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason) or type(err).__name__


def raw_size(source: Union[bytes, str], name: str) -> Tuple[int, int]:
    """(height, width) of the developed, upright image of a RAW file (its bytes or its path),
    from its header: LibRaw opens the file without unpacking the sensor data."""
    with _open(source, name) as raw:
        sizes = raw.sizes
        turned = sizes.flip in (5, 6)  # LibRaw's codes for a quarter turn
        return (sizes.width, sizes.height) if turned else (sizes.height, sizes.width)


def rendering_params(rawpy: Any) -> Any:
    """:data:`RAW_RENDERING` as a ``rawpy.Params``."""
    kw = dict(RAW_RENDERING)
    kw["demosaic_algorithm"] = rawpy.DemosaicAlgorithm[kw["demosaic_algorithm"]]
    kw["highlight_mode"] = rawpy.HighlightMode[kw["highlight_mode"]]
    kw["output_color"] = rawpy.ColorSpace[kw["output_color"]]
    return rawpy.Params(**kw)


def decode_raw(data: bytes, name: str, max_pixels: Optional[int] = None) -> RawPhoto:
    """Develop a RAW file's bytes with :data:`RAW_RENDERING`; its EXIF with it.

    Raises:
        PhotoError: rawpy (extra ``raw``) missing, data LibRaw cannot read or decode, or more
            than ``max_pixels`` pixels; the message starts with ``name``.
    """
    rawpy = _rawpy(name)
    with _open(data, name) as raw:
        width, height = raw.sizes.width, raw.sizes.height
        if max_pixels is not None and width * height > max_pixels:
            raise PhotoError(
                f"{name}: {width}x{height} is larger than the limit of {max_pixels} pixels"
            )
        try:
            pixels = raw.postprocess(rendering_params(rawpy))
        except rawpy.LibRawError as err:
            raise PhotoError(
                f"{name}: cannot be decoded, the RAW data is truncated or corrupt "
                f"({_libraw_reason(err)})"
            ) from err
    exif, note = read_raw_exif(data)
    return RawPhoto(np.ascontiguousarray(pixels), exif, note)


def read_raw_exif(data: bytes) -> Tuple[Optional[Image.Exif], Optional[str]]:
    """(the camera's EXIF: descriptive IFD0 tags, Exif and GPS sub-IFDs, orientation 1; why it
    could not be read). exiv2 when installed, else Pillow for TIFF-structured RAWs."""
    try:
        if exiv2_available():
            return _exif_with_exiv2(data), None
        if data[:4] in _TIFF_MAGIC:
            exif = Image.Exif()
            exif.load(data)
            return _without_maker_note(exif), None
    except (ValueError, SyntaxError, OSError, KeyError, TypeError, struct.error) as err:
        # damaged metadata: the pixels are still a photo
        return None, f"the EXIF cannot be read ({err})"
    return None, RAW_EXIF_HINT


def _without_maker_note(exif: Image.Exif) -> Optional[Image.Exif]:
    kept = portable_exif(exif)
    if kept is not None:
        kept.get_ifd(0x8769).pop(_MAKER_NOTE, None)
    return kept


def _exif_with_exiv2(data: bytes) -> Optional[Image.Exif]:
    """The RAW's EXIF through exiv2, handed to Pillow in a 1x1 JPEG that exiv2 writes it into
    (exiv2's own encoder, so no value is converted by hand)."""
    import exiv2

    try:
        source = exiv2.ImageFactory.open(data)
        source.readMetadata()
        kept = exiv2.ExifData()
        for datum in source.exifData():
            group, tag = datum.groupName(), datum.tag()
            if (
                (group == "Image" and tag in DESCRIPTIVE_IFD0_TAGS)
                or (group == "Photo" and tag not in (_MAKER_NOTE, _INTEROP_IFD))
                or group == "GPSInfo"
            ):
                kept.add(datum)
        if not kept.count():
            return None
        buf = io.BytesIO()
        Image.new("L", (1, 1)).save(buf, "JPEG")
        carrier = exiv2.ImageFactory.open(buf.getvalue())
        carrier.readMetadata()
        carrier.setExifData(kept)
        carrier.writeMetadata()
        jpeg = bytes(carrier.io().data())
    except exiv2.Exiv2Error as err:
        raise ValueError(f"exiv2: {err}") from err
    return portable_exif(Image.open(io.BytesIO(jpeg)).getexif())
