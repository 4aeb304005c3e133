"""Photo files <-> :class:`Photo`: upright pixels plus what must travel to the output.

Read: JPEG, PNG, TIFF (8/16-bit), WebP, BMP, and HEIC/HEIF with the optional ``heif`` extra
(pillow-heif). Written: JPEG, PNG, TIFF, WebP, BMP. Pillow decodes and encodes 8-bit photos
with their EXIF, XMP and ICC profile; Pillow has no 16-bit RGB mode, so 16-bit PNG and TIFF
pixels go through OpenCV (PNG; the metadata chunks come from Pillow) and tifffile (TIFF; the
Exif and GPS sub-IFDs through exiv2, :mod:`lptn.photo.tiff_exif`). IPTC goes where the
format holds it (:mod:`lptn.photo.iptc`); PNG text goes to PNG outputs, and its Author,
Description and Copyright to the EXIF of other formats.
Camera RAW files (optional ``raw`` extra) are developed by :mod:`lptn.photo.raw_file`.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from lptn.photo import raw_file
from lptn.photo.colour import adobe_rgb_profile_bytes, srgb_profile_bytes
from lptn.photo.errors import PhotoError
from lptn.photo.iptc import (
    IPTC_EXTRA_HINT,
    IPTC_TAG,
    add_iptc,
    iptc_of,
    png_has_iptc,
    png_iptc_chunk,
)
from lptn.photo.metadata import (
    DESCRIPTIVE_IFD0_TAGS,
    ORIENTATION,
    SUB_IFDS,
    PngText,
    apply_orientation,
    exif_for_output,
    exif_with_png_text,
    insert_png_chunks,
    mark_srgb,
    png_metadata_chunks,
    png_text_of,
    portable_exif,
    read_orientation,
    says_adobe_rgb,
    upright_xmp,
)
from lptn.photo.settings import DEFAULT_JPEG_QUALITY, check_photo_option
from lptn.photo.tiff_exif import (
    TIFF_EXIF_EXTRA_HINT,
    add_exif_sub_ifds,
    exiv2_available,
    has_sub_ifds,
)
from lptn.platform.atomic_file import write_bytes_atomic
from lptn.platform.logger import get_logger

PathLike = Union[str, Path]

# Size limits are the caller's choice (``max_pixels``); Pillow's own guard would refuse
# legitimate 200-megapixel photos.
Image.MAX_IMAGE_PIXELS = None

HEIF_EXTRA = (
    "HEIC/HEIF photos need the optional extra 'heif' (pip install 'lptn[heif]', which "
    "installs pillow-heif)"
)
READ_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "HEIF", "RAW")
WRITE_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
MEDIA_TYPES: Dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
}
FORMAT_EXTENSIONS: Dict[str, str] = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "BMP": ".bmp",
}
# File name extensions of photos (lower case) and the format each one names.
PHOTO_EXTENSIONS: Dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    **{ext: "RAW" for ext in raw_file.RAW_EXTENSIONS},
}
_FORMAT_NAMES = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF", "MPO": "JPEG"}
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_GREY_MODES = ("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N")


@dataclass
class Photo:
    """A decoded photo, upright (its EXIF orientation applied).

    ``pixels``: ``HxWx3`` RGB or ``HxW`` grey, uint8 or uint16 as stored; ``alpha``: ``HxW`` of
    the same dtype or None. ``icc``: the embedded ICC profile (None = untagged, i.e. sRGB).
    ``exif``: camera, dates, GPS... with the orientation reset to 1. ``xmp``: the XMP packet.
    ``iptc``: the IPTC-IIM datasets (keywords, by-line, city, caption...) as the IIM bytes of
    TIFF tag 33723 (:mod:`lptn.photo.iptc`). ``png_text``: the text chunks of a PNG input
    (Author, Description...; not XMP or raw profiles). The metadata kept are these five.
    ``format``: one of :data:`READ_FORMATS`. ``jpeg_subsampling``: Pillow's code (0 = 4:4:4,
    1 = 4:2:2, 2 = 4:2:0) for JPEG inputs; ``jpeg_progressive``: the input JPEG was progressive
    (SOF2); ``webp_lossless``: the input WebP was lossless.
    """

    pixels: np.ndarray
    alpha: Optional[np.ndarray] = None
    icc: Optional[bytes] = None
    exif: Optional[Image.Exif] = None
    xmp: Optional[bytes] = None
    iptc: Optional[bytes] = None
    png_text: Tuple[PngText, ...] = ()
    format: str = "PNG"
    jpeg_subsampling: Optional[int] = None
    jpeg_progressive: bool = False
    webp_lossless: bool = False

    @property
    def is_grey(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])

    def with_pixels(self, pixels: np.ndarray, **changes: Any) -> Photo:
        """A copy holding other pixels (same metadata unless ``changes`` say otherwise)."""
        return replace(self, pixels=pixels, **changes)


def format_name(name: str) -> str:
    """``'jpg'``, ``'JPEG'``, ``'.tif'``... -> the canonical format name (``'JPEG'``)."""
    key = name.strip().lstrip(".").upper()
    key = _FORMAT_NAMES.get(key, key)
    if key not in READ_FORMATS:
        known = ", ".join(f.lower() for f in WRITE_FORMATS)
        raise PhotoError(f"unknown photo format {name!r}; use one of {known}")
    return key


def is_photo_file(path: PathLike) -> bool:
    """True if the file name has a photo extension (case-insensitive)."""
    return Path(path).suffix.lower() in PHOTO_EXTENSIONS


def output_format_for(input_format: str, raw_format: Optional[str] = None) -> str:
    """The format an output is written in by default: the input's, JPEG for HEIF, and for RAW
    ``raw_format`` (one of :data:`~lptn.photo.raw_file.RAW_OUTPUT_FORMATS`; None: 16-bit TIFF).
    """
    if input_format == "RAW":
        fmt = format_name(raw_format) if raw_format else raw_file.RAW_OUTPUT_FORMATS[0]
        if fmt not in raw_file.RAW_OUTPUT_FORMATS:
            known = ", ".join(f.lower() for f in raw_file.RAW_OUTPUT_FORMATS)
            raise PhotoError(f"RAW photos are written as {known}, not {raw_format!r}")
        return fmt
    return "JPEG" if input_format == "HEIF" else input_format


def read_photo(path: PathLike, max_pixels: Optional[int] = None) -> Photo:
    """Read a photo file; :class:`PhotoError` names the file and the reason."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise PhotoError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise PhotoError(f"{path}: is a folder, not a photo") from err
    except OSError as err:
        raise PhotoError(f"{path}: cannot be read ({err.strerror or err})") from err
    return decode_photo(data, str(path), max_pixels=max_pixels)


def _register_heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _looks_like_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def decode_photo(data: bytes, name: str = "photo", max_pixels: Optional[int] = None) -> Photo:
    """Encoded photo bytes -> :class:`Photo`.

    Raises:
        PhotoError: empty, truncated or corrupt data, not an image, an unsupported format or
            kind of image (CMYK, float samples), more than ``max_pixels`` pixels, or HEIC
            without the ``heif`` extra; the message starts with ``name``.
    """
    if not data:
        raise PhotoError(f"{name}: the file is empty")
    if raw_file.is_raw(data, name):
        return _raw_photo(data, name, max_pixels)
    im, fmt = _open_checked(io.BytesIO(data), data[:16], name, max_pixels)
    try:
        if _is_16bit(im, data, fmt):
            pixels, alpha = _decode_16bit(data, fmt, grey=im.mode in _GREY_MODES)
        else:
            pixels, alpha = _decode_with_pillow(im)
    except (OSError, ValueError, SyntaxError) as err:
        raise PhotoError(
            f"{name}: cannot be decoded, the data is truncated or corrupt ({err})"
        ) from err
    try:
        exif = im.getexif()
        kept = portable_exif(exif)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError, struct.error):
        # damaged EXIF: the pixels are still a photo; nothing of the EXIF can be trusted
        exif, kept = Image.Exif(), None
    # libheif has already applied the HEIF container's rotation; the EXIF tag is informative.
    orientation = 1 if fmt == "HEIF" else read_orientation(exif)
    pixels = apply_orientation(pixels, orientation)
    if alpha is not None:
        alpha = apply_orientation(alpha, orientation)
    if fmt == "PNG" and png_has_iptc(im) and not exiv2_available():
        _warn_once(f"IPTC of PNG inputs not read: {IPTC_EXTRA_HINT}")
    icc = im.info.get("icc_profile") or None
    if icc is None and fmt != "HEIF" and says_adobe_rgb(exif):
        icc = adobe_rgb_profile_bytes()
        get_logger().info(
            "%s: no colour profile, and its EXIF marks it Adobe RGB (ColorSpace uncalibrated, "
            "InteropIndex R03: the camera convention): taken as Adobe RGB",
            name,
        )
    try:
        iptc = iptc_of(im, data, fmt)
    except (OSError, ValueError, SyntaxError, struct.error) as err:
        # damaged IPTC: the photo and its other metadata are still good
        get_logger().warning("%s: IPTC left out, it cannot be read (%s)", name, err)
        iptc = None
    try:
        png_text = png_text_of(im, data) if fmt == "PNG" else ()
    except (OSError, ValueError, SyntaxError, struct.error) as err:
        get_logger().warning("%s: PNG text left out, it cannot be read (%s)", name, err)
        png_text = ()
    return Photo(
        pixels=pixels,
        alpha=alpha,
        icc=icc,
        exif=kept,
        xmp=upright_xmp(_xmp_of(im, fmt)),
        iptc=iptc,
        png_text=png_text,
        format=fmt,
        jpeg_subsampling=_jpeg_subsampling(im) if fmt == "JPEG" else None,
        jpeg_progressive=fmt == "JPEG" and bool(im.info.get("progressive")),
        webp_lossless=fmt == "WEBP" and _webp_is_lossless(data),
    )


def _raw_photo(data: bytes, name: str, max_pixels: Optional[int]) -> Photo:
    """A RAW developed by LibRaw: upright 16-bit pixels in sRGB, tagged as such."""
    raw = raw_file.decode_raw(data, name, max_pixels)
    if raw.exif_note == raw_file.RAW_EXIF_HINT:
        _warn_once(f"RAW photos written without EXIF: {raw.exif_note}")
    elif raw.exif_note:
        get_logger().warning("%s: %s; written without it", name, raw.exif_note)
    return Photo(
        pixels=raw.pixels, icc=srgb_profile_bytes(), exif=mark_srgb(raw.exif), format="RAW"
    )


def _webp_is_lossless(data: bytes) -> bool:
    """True when the first image chunk of a RIFF WebP file is ``VP8L`` (lossless)."""
    pos = 12  # after "RIFF", the size and "WEBP"
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        if fourcc in (b"VP8L", b"VP8 "):
            return fourcc == b"VP8L"
        pos += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


def _open_checked(
    source: Any, head: bytes, name: str, max_pixels: Optional[int]
) -> Tuple[Image.Image, str]:
    """Open (header only) and check what the pixels will need: format, mode, size, extras."""
    if _looks_like_heif(head) and not _register_heif():
        raise PhotoError(f"{name}: {HEIF_EXTRA}")
    try:
        im = Image.open(source)
    except UnidentifiedImageError as err:
        raise PhotoError(
            f"{name}: not a photo this tool reads (JPEG, PNG, TIFF, WebP, BMP, HEIC, RAW)"
        ) from err
    except (OSError, ValueError, SyntaxError) as err:
        raise PhotoError(
            f"{name}: cannot be read, the data is truncated or corrupt ({err})"
        ) from err
    fmt = _FORMAT_NAMES.get(str(im.format), str(im.format))
    frames = _frame_count(im)
    if frames > 1:
        what = "pages" if fmt == "TIFF" else "images" if fmt == "HEIF" else "animation frames"
        raise PhotoError(
            f"{name}: {frames} {what} in one {im.format} file; only single-image photos are "
            "enhanced (a file is not cut to its first frame): split it into photos first"
        )
    if fmt not in READ_FORMATS:
        raise PhotoError(
            f"{name}: {im.format} files are not supported (JPEG, PNG, TIFF, WebP, BMP, HEIC are)"
        )
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise PhotoError(
            f"{name}: {width}x{height} is larger than the limit of {max_pixels} pixels"
        )
    if im.mode not in _GREY_MODES + ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX"):
        raise PhotoError(
            f"{name}: {im.mode} images are not supported (RGB or grey, 8 or 16 bits per sample)"
        )
    return im, fmt


def _frame_count(im: Image.Image) -> int:
    """The images an opened file holds: animation frames (GIF, WebP, APNG), TIFF pages, HEIF
    top-level images. A JPEG's MPF extras (previews, depth or gain maps of the same shot) and
    a TIFF's reduced-resolution pages (previews) do not count; the first image is the photo."""
    try:
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames <= 1 or im.format == "MPO":
            return 1
        if im.format == "TIFF":
            full = 0
            for index in range(frames):
                im.seek(index)
                subfile = im.tag_v2.get(254, 0)  # type: ignore[attr-defined]  # NewSubfileType
                full += not int(subfile) & 1  # bit 0: a reduced-resolution copy
            im.seek(0)
            return full
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        # a damaged chain of further images: the first one is still read, as it was
        im.seek(0)
        return 1
    return frames


def probe_photo(path: PathLike) -> Tuple[int, int]:
    """Check from its header that ``path`` is a photo this module reads; (height, width).

    Cheap (no pixels are decoded): a truncated file is only found when it is read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(raw_file.HEAD_BYTES)
            if not head:
                raise PhotoError(f"{path}: the file is empty")
            if raw_file.is_raw(head, str(path)):
                return raw_file.raw_size(str(path), str(path))
            handle.seek(0)
            im, _ = _open_checked(handle, head, str(path), None)
            width, height = im.size
    except PhotoError:
        raise
    except IsADirectoryError as err:
        raise PhotoError(f"{path}: is a folder, not a photo") from err
    except OSError as err:
        raise PhotoError(f"{path}: cannot be read ({err.strerror or err})") from err
    return height, width


def _is_16bit(im: Image.Image, data: bytes, fmt: str) -> bool:
    if fmt == "PNG":
        return len(data) > 24 and data[24] == 16  # IHDR bit depth
    if fmt == "TIFF":
        bits = im.tag_v2.get(258, 8)  # type: ignore[attr-defined]
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _decode_16bit(data: bytes, fmt: str, grey: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """16-bit PNG / TIFF -> the pixels as stored (not yet turned upright)."""
    if fmt == "TIFF":
        data = _tiff_stored_upright(data)
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError("OpenCV could not decode it")
    if arr.dtype != np.uint16:
        raise OSError(f"unexpected {arr.dtype} samples")
    if arr.ndim == 2:
        return arr, None
    channels = arr.shape[2]
    alpha = np.ascontiguousarray(arr[:, :, -1]) if channels in (2, 4) else None
    if grey or channels <= 2:
        return np.ascontiguousarray(arr[:, :, 0]), alpha
    return np.ascontiguousarray(arr[:, :, 2::-1]), alpha  # BGR(A) -> RGB


def _tiff_stored_upright(data: bytes) -> bytes:
    """``data`` with its first page's Orientation tag set to 1 (its bytes otherwise unchanged).

    OpenCV's TIFF decoder applies the Orientation tag to 16-bit pages itself, whatever the
    flags, while the Pillow path (8-bit) gives the pixels as stored; with the tag at 1 both
    paths hand :func:`apply_orientation` the stored pixels.
    """
    import tifffile

    buf = io.BytesIO(data)
    with tifffile.TiffFile(buf) as tif:
        page = tif.pages[0]
        tag = page.tags.get(ORIENTATION) if isinstance(page, tifffile.TiffPage) else None
        if tag is None or tag.value == 1:
            return data
        tag.overwrite(1)
    return buf.getvalue()


def _decode_with_pillow(im: Image.Image) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    im.load()
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im, dtype=np.uint16).copy(), None
    if mode in ("1", "L"):
        return np.asarray(im.convert("L")).copy(), None
    if mode in ("LA", "La"):
        arr = np.asarray(im.convert("LA"))
        return arr[:, :, 0].copy(), arr[:, :, 1].copy()
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        arr = np.asarray(im.convert("RGBA"))
        return arr[:, :, :3].copy(), arr[:, :, 3].copy()
    return np.asarray(im.convert("RGB")).copy(), None


def _xmp_of(im: Image.Image, fmt: str) -> Optional[bytes]:
    xmp: Any = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp is None and fmt == "TIFF":
        xmp = im.tag_v2.get(700)  # type: ignore[attr-defined]
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, tuple):  # some TIFF writers store XMP as a tuple of byte values
        xmp = bytes(xmp)
    return bytes(xmp) if xmp else None


def _jpeg_subsampling(im: Image.Image) -> Optional[int]:
    try:
        value = JpegImagePlugin.get_sampling(im)
    except (AttributeError, IndexError, TypeError):
        return None
    return value if value in (0, 1, 2) else None


def encode_photo(
    photo: Photo, fmt: Optional[str] = None, *, jpeg_quality: int = DEFAULT_JPEG_QUALITY
) -> bytes:
    """:class:`Photo` -> file bytes in ``fmt`` (default: :func:`output_format_for` its input
    format), with its EXIF, XMP, ICC profile, IPTC (JPEG, PNG, TIFF) and PNG text where the
    format holds them (BMP holds none).

    16-bit photos stay 16-bit in PNG and TIFF and are rounded to 8 bits for JPEG, WebP and
    BMP. JPEG keeps the input's chroma subsampling and progressive coding; WebP is lossless
    when the input was.

    Raises:
        PhotoError: an unknown format, transparency for JPEG, a bad ``jpeg_quality``.
    """
    fmt = format_name(fmt) if fmt else output_format_for(photo.format)
    if fmt not in WRITE_FORMATS:
        raise PhotoError(f"{fmt} cannot be written; use one of {', '.join(WRITE_FORMATS)}")
    check_photo_option("jpeg_quality", jpeg_quality)
    if fmt == "JPEG" and photo.alpha is not None:
        raise PhotoError("JPEG cannot hold transparency; write PNG, TIFF or WebP instead")
    pixels, alpha = photo.pixels, photo.alpha
    if pixels.dtype == np.uint16 and fmt in ("JPEG", "WEBP", "BMP"):
        pixels = _to_8bit(pixels)
        alpha = None if alpha is None else _to_8bit(alpha)
    height, width = pixels.shape[:2]
    exif = exif_for_output(photo.exif, width, height)
    if fmt != "PNG":  # PNG text has nowhere else to go; Author, Description, Copyright: EXIF
        exif = exif_with_png_text(exif, photo.png_text)
    # A Photo's pixels are upright: an XMP orientation would turn them again in some viewers.
    photo = replace(photo, xmp=upright_xmp(photo.xmp))
    if photo.iptc and fmt == "WEBP":
        _warn_once("IPTC left out of WebP outputs: WebP cannot hold IPTC (its XMP is kept)")
    if pixels.dtype == np.uint16:
        if fmt == "PNG":
            return _encode_png16(pixels, alpha, _png_metadata(photo, exif))
        return _encode_tiff16(pixels, alpha, photo.icc, exif, photo.xmp, photo.iptc)
    data = _encode_with_pillow(photo, pixels, alpha, fmt, exif, jpeg_quality)
    if fmt == "JPEG" and photo.iptc and _iptc_writable():
        try:
            data = add_iptc(data, photo.iptc)
        except ValueError as err:
            get_logger().warning("IPTC left out of a JPEG output: %s", err)
    return data


def _iptc_writable() -> bool:
    """True when exiv2 can write IPTC into JPEG and PNG; else one warning says why not."""
    if exiv2_available():
        return True
    _warn_once(f"IPTC left out of JPEG and PNG outputs: {IPTC_EXTRA_HINT}")
    return False


def _png_metadata(photo: Photo, exif: Optional[Image.Exif]) -> List[bytes]:
    """The metadata chunks of a PNG output: ICC, EXIF, XMP, the input's text, IPTC."""
    chunks = png_metadata_chunks(photo.icc, exif, photo.xmp, photo.png_text)
    if photo.iptc and _iptc_writable():
        try:
            chunks.append(png_iptc_chunk(photo.iptc))
        except ValueError as err:
            get_logger().warning("IPTC left out of a PNG output: %s", err)
    return chunks


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    return np.round(arr.astype(np.float32) / np.float32(257.0)).astype(np.uint8)


def _pillow_image(pixels: np.ndarray, alpha: Optional[np.ndarray]) -> Image.Image:
    if pixels.ndim == 2:
        if alpha is None:
            return Image.fromarray(pixels, "L")
        return Image.fromarray(np.dstack([pixels, alpha]), "LA")
    if alpha is None:
        return Image.fromarray(pixels, "RGB")
    return Image.fromarray(np.dstack([pixels, alpha]), "RGBA")


def _encode_with_pillow(
    photo: Photo,
    pixels: np.ndarray,
    alpha: Optional[np.ndarray],
    fmt: str,
    exif: Optional[Image.Exif],
    jpeg_quality: int,
) -> bytes:
    im = _pillow_image(pixels, alpha)
    if fmt == "PNG":
        return insert_png_chunks(_png_bytes(im), _png_metadata(photo, exif))
    kwargs = _pillow_save_options(photo, fmt, exif, jpeg_quality)
    buf = io.BytesIO()
    try:
        im.save(buf, fmt, **kwargs)
    except (ValueError, TypeError, struct.error) as err:
        if exif is None:
            raise PhotoError(f"cannot encode the photo as {fmt}: {err}") from err
        # an EXIF value Pillow cannot write (an odd maker note...): keep the rest
        get_logger().warning("EXIF left out of a %s output: cannot be written (%s)", fmt, err)
        kwargs.pop("exif", None)
        if fmt == "TIFF":
            kwargs["tiffinfo"] = _tiff_tags(None, photo.xmp, photo.iptc)
        buf = io.BytesIO()
        im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _pillow_save_options(
    photo: Photo, fmt: str, exif: Optional[Image.Exif], jpeg_quality: int
) -> Dict[str, Any]:
    """Keyword arguments of ``Image.save`` for ``fmt`` (JPEG, WEBP, TIFF or BMP): the photo's
    metadata and the encoder settings it was read with."""
    kwargs: Dict[str, Any] = {}
    if fmt != "BMP" and photo.icc:
        kwargs["icc_profile"] = photo.icc
    if fmt in ("JPEG", "WEBP"):
        if exif is not None:
            kwargs["exif"] = exif
        if photo.xmp:
            kwargs["xmp"] = photo.xmp
        kwargs["quality"] = int(jpeg_quality)
    if fmt == "JPEG":
        if photo.jpeg_subsampling is not None and not photo.is_grey:
            kwargs["subsampling"] = photo.jpeg_subsampling
        if photo.jpeg_progressive:
            kwargs["progressive"] = True
    elif fmt == "WEBP":
        kwargs["lossless"] = photo.webp_lossless
        kwargs["exact"] = True  # keep the colour under fully transparent pixels
    elif fmt == "TIFF":
        kwargs["tiffinfo"] = _tiff_tags(exif, photo.xmp, photo.iptc)
    return kwargs


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _tiff_tags(
    exif: Optional[Image.Exif], xmp: Optional[bytes], iptc: Optional[bytes]
) -> Dict[int, Any]:
    tags: Dict[int, Any] = {}
    if exif is not None:
        tags.update(exif.items())
        for tag in SUB_IFDS:
            sub = exif.get_ifd(tag)
            if sub:
                tags[tag] = dict(sub)
    if xmp:
        tags[700] = xmp
    if iptc:
        tags[IPTC_TAG] = iptc
    return tags


def _encode_png16(pixels: np.ndarray, alpha: Optional[np.ndarray], metadata: List[bytes]) -> bytes:
    if pixels.ndim == 2:
        arr = pixels if alpha is None else np.dstack([pixels, pixels, pixels, alpha])
    else:
        bgr = pixels[:, :, ::-1]
        arr = bgr if alpha is None else np.dstack([bgr, alpha])
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise PhotoError("OpenCV could not encode this 16-bit PNG")
    return insert_png_chunks(buf.tobytes(), metadata)


def _encode_tiff16(
    pixels: np.ndarray,
    alpha: Optional[np.ndarray],
    icc: Optional[bytes],
    exif: Optional[Image.Exif],
    xmp: Optional[bytes],
    iptc: Optional[bytes],
) -> bytes:
    import tifffile

    grey = pixels.ndim == 2
    arr = pixels if alpha is None else np.dstack([pixels, alpha])
    # tifffile writes IFD0 only: the ICC profile, the XMP, IPTC and the descriptive tags (camera,
    # date, resolution, copyright). The Exif and GPS sub-IFDs come after, from exiv2.
    # Orientation 1 said explicitly, as the 8-bit TIFF outputs do: the pixels are upright.
    extratags: List[Tuple[int, int, int, Any, bool]] = [(ORIENTATION, 3, 1, 1, True)]
    if icc:
        extratags.append((34675, 7, len(icc), icc, True))
    if xmp:
        extratags.append((700, 1, len(xmp), xmp, True))
    if iptc:
        extratags.append((IPTC_TAG, 7, len(iptc), iptc, True))
    if exif is not None:
        extratags.append((0x0112, 3, 1, 1, True))  # Orientation 1: the pixels are upright
        for tag in DESCRIPTIVE_IFD0_TAGS:
            value = exif.get(tag)
            if isinstance(value, str) and value:  # the text ones (camera, date, copyright...)
                extratags.append((tag, 2, 0, value, True))
    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        arr,
        photometric="minisblack" if grey else "rgb",
        extrasamples=["unassalpha"] if alpha is not None else None,
        compression="zlib",
        metadata=None,
        software=False,
        extratags=extratags,
    )
    data = buf.getvalue()
    if exif is None or not has_sub_ifds(exif):
        return data
    if not exiv2_available():
        _warn_once(f"EXIF sub-IFDs left out of 16-bit TIFF outputs: {TIFF_EXIF_EXTRA_HINT}")
        return data
    try:
        return add_exif_sub_ifds(data, exif)
    except ValueError as err:
        get_logger().warning("EXIF sub-IFDs left out of a 16-bit TIFF output: %s", err)
        return data


_warned: Set[str] = set()


def _warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time only (a library has one cause, not N)."""
    if message not in _warned:
        _warned.add(message)
        get_logger().warning(message)


def write_photo(
    path: PathLike,
    photo: Photo,
    fmt: Optional[str] = None,
    *,
    jpeg_quality: int = DEFAULT_JPEG_QUALITY,
) -> None:
    """Encode ``photo`` (see :func:`encode_photo`) and write it atomically to ``path``."""
    write_bytes_atomic(path, encode_photo(photo, fmt, jpeg_quality=jpeg_quality))
