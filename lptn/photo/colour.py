"""Colour management with littleCMS: photos in other RGB spaces to sRGB and back.

The LPTN network was trained on sRGB photos, so an Adobe RGB, ProPhoto RGB or Display P3
photo is converted to sRGB before it is enhanced. 8-bit photos go through Pillow's ImageCms;
Pillow has no 16-bit RGB mode, so 16-bit photos go through libvips (pyvips, the optional
``colour16`` extra), which runs littleCMS at 16 bits. Both use the relative colorimetric
intent without black-point compensation and the same sRGB profile, so they agree to within
rounding. Colours outside sRGB are clipped to it.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from typing import Optional

import numpy as np
from PIL import Image, ImageCms

from lptn.photo.errors import PhotoError

INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
COLOUR16_EXTRA = (
    "16-bit photos with a colour profile other than sRGB need the optional extra 'colour16' "
    "(pip install 'lptn[colour16]', which installs pyvips with libvips)"
)


@functools.cache
def srgb_profile_bytes() -> bytes:
    """The sRGB ICC profile that littleCMS builds, as embedded in converted outputs."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError) as err:
        raise PhotoError(f"the embedded colour profile cannot be read ({err})") from err


def profile_space(icc: bytes) -> str:
    """The profile's colour space, stripped: ``'RGB'``, ``'GRAY'``, ``'CMYK'``..."""
    return str(_profile(icc).profile.xcolor_space).strip()


def profile_name(icc: bytes) -> str:
    """The profile's description (``'Adobe RGB (1998)'``), for messages."""
    return str(_profile(icc).profile.profile_description or "unnamed profile").strip()


def is_srgb(icc: Optional[bytes]) -> bool:
    """True for no profile (untagged photos are sRGB) or a profile that describes itself as
    sRGB (``sRGB IEC61966-2.1``, ``sRGB built-in``...)."""
    if not icc:
        return True
    return icc == srgb_profile_bytes() or "srgb" in profile_name(icc).lower()


def convert_rgb(rgb: np.ndarray, src_icc: bytes, dst_icc: bytes) -> np.ndarray:
    """``HxWx3`` uint8/uint16 RGB from the ``src_icc`` space to the ``dst_icc`` space, same
    dtype (16-bit stays 16-bit)."""
    if rgb.dtype == np.uint8:
        src, dst = _profile(src_icc), _profile(dst_icc)
        try:
            transform = ImageCms.buildTransform(src, dst, "RGB", "RGB", renderingIntent=INTENT)
            out = ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), transform)
        except ImageCms.PyCMSError as err:
            raise PhotoError(f"cannot convert between these colour profiles ({err})") from err
        assert out is not None
        return np.asarray(out)
    if rgb.dtype == np.uint16:
        return _convert_rgb16(rgb, src_icc, dst_icc)
    raise TypeError(f"convert_rgb: expected uint8 or uint16, got {rgb.dtype}")


def to_srgb(rgb: np.ndarray, icc: Optional[bytes]) -> np.ndarray:
    """``rgb`` tagged with ``icc`` -> sRGB (unchanged when it already is sRGB)."""
    if is_srgb(icc):
        return rgb
    assert icc is not None
    return convert_rgb(rgb, icc, srgb_profile_bytes())


def from_srgb(rgb: np.ndarray, icc: Optional[bytes]) -> np.ndarray:
    """sRGB ``rgb`` -> the space of ``icc`` (unchanged when that is sRGB)."""
    if is_srgb(icc):
        return rgb
    assert icc is not None
    return convert_rgb(rgb, srgb_profile_bytes(), icc)


def _convert_rgb16(rgb: np.ndarray, src_icc: bytes, dst_icc: bytes) -> np.ndarray:
    try:
        import pyvips
    except (ImportError, OSError) as err:
        raise PhotoError(COLOUR16_EXTRA) from err
    # libvips takes the output profile from a file only.
    fd, dst_path = tempfile.mkstemp(suffix=".icc")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(dst_icc)
        image = pyvips.Image.new_from_array(np.ascontiguousarray(rgb), interpretation="rgb16")
        image = image.copy()
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", src_icc)
        out = image.icc_transform(dst_path, embedded=True, depth=16, intent="relative")
        result = np.asarray(out.numpy(), dtype=np.uint16)
    except pyvips.Error as err:
        raise PhotoError(f"cannot convert between these colour profiles ({err})") from err
    finally:
        os.unlink(dst_path)
    return result.reshape(rgb.shape)
