"""A photo's upright size from its header, for the start-up check of large data sets.

Reading the header (Pillow opens a file without decoding its pixels) and the EXIF orientation
gives the ``(height, width)`` that :func:`lptn.data.image_io.read_image` will return, in a
fraction of the decoding time. A truncated JPEG or PNG (an interrupted copy, the usual broken
file) is caught too: such a file lacks its end marker, and a file without one is decoded in
full to be sure (some cameras append data after it). Damage inside the compressed data of a
complete file is only found when the file is read for training. RAW files are sized by LibRaw
from their header (:func:`lptn.photo.raw_file.raw_size`); a file the header cannot settle (no
raw extra, several frames, a mode the reader refuses) is decoded in full, for its message.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Tuple, Union

from lptn.data.image_io import ImageReadError, decode_image, read_image

PathLike = Union[str, Path]

# Pillow modes the photo reader decodes; a file in another (CMYK...) is decoded in full so that
# the reader's own message names what is wrong.
_READER_MODES = frozenset(
    (
        "1",
        "L",
        "LA",
        "La",
        "I;16",
        "I;16L",
        "I;16B",
        "I;16N",
        "P",
        "PA",
        "RGB",
        "RGBA",
        "RGBa",
        "RGBX",
    )
)
_JPEG_END = b"\xff\xd9"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _ends_complete(handle: BinaryIO, fmt: str) -> bool:
    """False when a JPEG or PNG lacks the marker its last bytes must hold."""
    if fmt not in ("JPEG", "PNG"):
        return True
    end = _JPEG_END if fmt == "JPEG" else _PNG_END
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 64))
    tail = handle.read()
    # A JPEG may end with padding after its EOI marker; a PNG ends with IEND exactly.
    return tail.rstrip(b"\x00").endswith(end) if fmt == "JPEG" else tail.endswith(end)


def _probe_open(
    handle: BinaryIO, name: str, raw_source: Union[str, bytes]
) -> Tuple[Tuple[int, int], bool]:
    """((height, width) upright, end marker present) of the photo in ``handle``; a RAW file
    (``raw_source``: its path or bytes) is sized by LibRaw from its header."""
    from PIL import Image, UnidentifiedImageError

    from lptn.photo import raw_file
    from lptn.photo.metadata import read_orientation
    from lptn.photo.photo_file import format_name

    head = handle.read(raw_file.HEAD_BYTES)
    handle.seek(0)
    if raw_file.is_raw(head, name):
        # checked first: Pillow would open a DNG or NEF as the TIFF of its preview
        try:
            return raw_file.raw_size(raw_source, name), True
        except (OSError, ValueError) as err:  # PhotoError (no raw extra...) is a ValueError
            raise _NeedsDecoding(name) from err
    try:
        im = Image.open(handle)
        width, height = im.size
        fmt = format_name(str(im.format))
        # other modes (CMYK...) and several frames are refused by the reader in its own words
        if im.mode not in _READER_MODES or getattr(im, "n_frames", 1) > 1:
            raise _NeedsDecoding(name)
        try:
            # libheif has already turned HEIF pixels; the EXIF tag is informative there
            orientation = 1 if fmt == "HEIF" else read_orientation(im.getexif())
        except (OSError, ValueError, SyntaxError, KeyError, TypeError):
            orientation = 1  # damaged EXIF: decode_photo reads it as upright too
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        # not a header Pillow reads, or a format the photo reader refuses (PhotoError is a
        # ValueError): decoding in full gives the reader's own message
        raise _NeedsDecoding(name) from err
    size = (width, height) if orientation in (5, 6, 7, 8) else (height, width)
    return size, _ends_complete(handle, fmt)


class _NeedsDecoding(Exception):
    """The header alone cannot say: decode the file in full (its error is the one to show)."""


def probe_file(path: PathLike) -> Tuple[int, int]:
    """``(height, width)`` of the photo file ``path`` as :func:`read_image` returns it.

    Raises:
        ImageReadError: the file is missing, not a photo, truncated or corrupt (named).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size, complete = _probe_open(handle, str(path), str(path))
    except _NeedsDecoding:
        complete = False
    except FileNotFoundError as err:
        raise ImageReadError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise ImageReadError(f"{path}: is a folder, not a photo") from err
    except OSError as err:
        raise ImageReadError(f"{path}: cannot be read ({err.strerror or err})") from err
    if complete:
        return size
    img = read_image(path)
    return int(img.shape[0]), int(img.shape[1])


def probe_bytes(data: bytes, name: str) -> Tuple[int, int]:
    """:func:`probe_file` for encoded bytes (an LMDB value); ``name`` is used in errors."""
    try:
        size, complete = _probe_open(io.BytesIO(data), name, data)
    except _NeedsDecoding:
        complete = False
    if complete:
        return size
    img = decode_image(data, name)
    return int(img.shape[0]), int(img.shape[1])


__all__ = ["probe_bytes", "probe_file"]
