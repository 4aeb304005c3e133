"""Image files <-> arrays <-> tensors, in one colour order (RGB) and one rounding convention.

Photos are read by :mod:`lptn.photo.photo_file`, the reader ``lptn-enhance`` uses, so training,
evaluation and enhancement see the same pixels: upright (EXIF orientation), sRGB, bit depth
kept. Arrays are ``HxWx3`` RGB, ``uint8`` or ``uint16`` as stored; float arrays are float32
in [0, 1]; tensors are ``(3, H, W)`` float32 in [0, 1]. Going back to integers always uses
``round(clip(x, 0, 1) * max)``, the convention the metrics use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Union

import cv2
import numpy as np
import torch
from numpy.typing import DTypeLike

from lptn.platform.atomic_file import write_bytes_atomic
from lptn.platform.option_schema import PHOTO, check_key

PathLike = Union[str, Path]

# Extensions write_image / encode_image know, mapped to the extension cv2 encodes with.
WRITE_EXTENSIONS: Dict[str, str] = {
    ".png": ".png",
    ".tif": ".tif",
    ".tiff": ".tif",
    ".jpg": ".jpg",
    ".jpeg": ".jpg",
}
_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


class ImageReadError(OSError):
    """A file could not be read as an image; the message names the file and the reason."""


class ImageWriteError(OSError):
    """An image could not be written; the message names the file and the reason."""


def is_image_file(path: PathLike) -> bool:
    """True if ``path`` has an extension the photo reader reads (case-insensitive): the
    extensions of :func:`lptn.photo.photo_file.is_photo_file`, RAW included where it is."""
    # imported here: lptn.photo imports the inference code, which imports this module
    from lptn.photo.photo_file import is_photo_file

    return is_photo_file(path)


def read_image(path: PathLike) -> np.ndarray:
    """Read a photo file as the training data needs it: ``HxWx3`` RGB, uint8 or uint16 as
    stored, upright and in sRGB.

    The file goes through :func:`lptn.photo.read_photo`, the reader of ``lptn-enhance``: the
    EXIF orientation is applied and an embedded RGB colour profile (Adobe RGB, ProPhoto,
    Display P3...) is converted to sRGB (:func:`lptn.photo.colour.to_srgb`; 16-bit stays
    16-bit). Grey photos are repeated to three channels (their profile, if any, is not
    applied); an alpha channel is dropped.

    Raises:
        ImageReadError: the file is missing, unreadable or not a decodable photo (named).
    """
    from lptn.photo.errors import PhotoError
    from lptn.photo.photo_file import read_photo

    try:
        photo = read_photo(path)
    except PhotoError as err:
        raise ImageReadError(str(err)) from err
    return photo_pixels(photo, str(path))


def decode_image(buf: bytes, name: str) -> np.ndarray:
    """Encoded photo bytes -> the array :func:`read_image` returns for the same file.

    ``name`` (a path or an LMDB key) is only used in error messages.
    """
    from lptn.photo.errors import PhotoError
    from lptn.photo.photo_file import decode_photo

    try:
        photo = decode_photo(buf, name)
    except PhotoError as err:
        raise ImageReadError(str(err)) from err
    return photo_pixels(photo, name)


def photo_pixels(photo: Any, name: str) -> np.ndarray:
    """A :class:`lptn.photo.Photo` (already upright) -> ``HxWx3`` sRGB uint8/uint16 pixels."""
    from lptn.photo.colour import profile_space, to_srgb
    from lptn.photo.errors import PhotoError

    pixels = photo.pixels
    if pixels.ndim == 2:
        # a grey profile is a tone curve close to sRGB's; the datasets take grey as it is
        return np.ascontiguousarray(np.repeat(pixels[:, :, None], 3, axis=2))
    pixels = np.ascontiguousarray(pixels)
    icc = photo.icc
    try:
        if icc and profile_space(icc) != "RGB":
            raise PhotoError(f"the embedded colour profile is for {profile_space(icc)} data")
        return np.ascontiguousarray(to_srgb(pixels, icc))
    except PhotoError as err:
        raise ImageReadError(f"{name}: cannot convert to sRGB: {err}") from err


def to_float(img: np.ndarray) -> np.ndarray:
    """``uint8`` / ``uint16`` array -> float32 in [0, 1] (divided by 255 or 65535).

    Float arrays are returned as float32 unchanged in value.
    """
    if img.dtype in _INT_MAX:
        return img.astype(np.float32) / np.float32(_INT_MAX[img.dtype])
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float32, copy=False)
    raise TypeError(f"to_float: unsupported dtype {img.dtype} (expected uint8, uint16 or float)")


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """``HxWx3`` float array in [0, 1] -> contiguous ``(3, H, W)`` float32 tensor."""
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(
            f"image_to_tensor: expected a float array in [0, 1], got {img.dtype} "
            "(convert with to_float first)"
        )
    if img.ndim != 3:
        raise ValueError(f"image_to_tensor: expected an HxWxC array, got shape {img.shape}")
    chw = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(chw)


def tensor_to_image(t: torch.Tensor, dtype: DTypeLike = np.uint8) -> np.ndarray:
    """``(3, H, W)`` or ``(1, 3, H, W)`` float tensor in [0, 1] -> ``HxWx3`` RGB array.

    Values are clamped to [0, 1] and rounded as ``round(x * 255)`` (uint8) or
    ``round(x * 65535)`` (uint16), half to even.
    """
    np_dtype = np.dtype(dtype)
    if np_dtype not in _INT_MAX:
        raise TypeError(f"tensor_to_image: dtype must be uint8 or uint16, got {np_dtype}")
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(
                f"tensor_to_image: a 4-D tensor must hold one image, got {tuple(t.shape)}"
            )
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(
            f"tensor_to_image: expected (3, H, W) or (1, 3, H, W), got {tuple(t.shape)}"
        )
    arr = t.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.round(arr * np.float32(_INT_MAX[np_dtype])).astype(np_dtype)


_JPEG_QUALITY: int = PHOTO.keys["jpeg_quality"].default


def encode_image(
    img: np.ndarray,
    ext: str,
    *,
    jpeg_quality: int = _JPEG_QUALITY,
    png_compress_level: int = 3,
) -> bytes:
    """Encode an ``HxWx3`` RGB (or ``HxW`` grey) uint8/uint16 array as PNG, TIFF or JPEG bytes.

    ``ext`` is a file extension such as ``'.png'``. 16-bit data cannot be stored as JPEG:
    that raises ``ValueError`` rather than silently dropping precision.
    """
    cv_ext = WRITE_EXTENSIONS.get(ext.lower())
    if cv_ext is None:
        raise ValueError(
            f"unsupported image extension {ext!r}; use one of {', '.join(sorted(WRITE_EXTENSIONS))}"
        )
    if img.dtype not in _INT_MAX:
        raise TypeError(f"cannot encode dtype {img.dtype}; expected uint8 or uint16")
    if img.ndim == 3 and img.shape[2] == 3:
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        bgr = np.ascontiguousarray(img.reshape(img.shape[:2]))
    else:
        raise ValueError(f"cannot encode an array of shape {img.shape}; expected HxWx3 or HxW")
    params: List[int] = []
    if cv_ext == ".jpg":
        if img.dtype == np.uint16:
            raise ValueError(
                "JPEG holds only 8-bit data; convert to uint8 explicitly or save "
                "as PNG/TIFF to keep 16 bits"
            )
        check_key(PHOTO, "jpeg_quality", jpeg_quality, "jpeg_quality")  # the schema's 1..100
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    elif cv_ext == ".png":
        if not 0 <= int(png_compress_level) <= 9:
            raise ValueError(f"png_compress_level must be in 0..9, got {png_compress_level}")
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compress_level)]
    ok, buf = cv2.imencode(cv_ext, bgr, params)
    if not ok:
        raise ValueError(f"cv2 could not encode a {img.dtype} {img.shape} image as {cv_ext}")
    return buf.tobytes()


def write_image(
    path: PathLike,
    img: np.ndarray,
    jpeg_quality: int = _JPEG_QUALITY,
    *,
    png_compress_level: int = 3,
) -> None:
    """Write an ``HxWx3`` RGB uint8/uint16 array; the format follows the extension.

    Parent folders are created. The write is atomic: the bytes go to a temporary file in the
    same folder which then replaces ``path``, so a crash never leaves a truncated image.

    Raises:
        ImageWriteError: naming ``path``, for an unsupported extension/dtype or an OS error.
    """
    path = Path(path)
    try:
        data = encode_image(
            img, path.suffix, jpeg_quality=jpeg_quality, png_compress_level=png_compress_level
        )
    except (ValueError, TypeError) as err:
        raise ImageWriteError(f"{path}: cannot write image: {err}") from err
    try:
        write_bytes_atomic(path, data)
    except OSError as err:
        raise ImageWriteError(f"{path}: cannot write image: {err.strerror or err}") from err


__all__ = [
    "ImageReadError",
    "ImageWriteError",
    "decode_image",
    "encode_image",
    "image_to_tensor",
    "is_image_file",
    "photo_pixels",
    "read_image",
    "tensor_to_image",
    "to_float",
    "write_image",
]
