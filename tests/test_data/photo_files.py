"""Photos saved as cameras and editors save them, made from the FiveK sample for the data tests:
turned pixels with EXIF orientation, Adobe RGB exports, 16-bit TIFFs (Pillow, tifffile and
littleCMS write them, not the code under test)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

ORIENTATION_TAG = 0x0112


def fivek_upright(fivek_sample_dir: Path, name: str, side: str = "source") -> np.ndarray:
    """A FiveK sample photo as ``HxWx3`` uint8 RGB, read with plain cv2 (untagged, upright)."""
    bgr = cv2.imread(str(fivek_sample_dir / side / f"{name}.png"), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read the FiveK sample {side}/{name}.png"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def save_turned_jpeg(path: Path, upright: np.ndarray, quality: int = 95) -> Path:
    """Save ``upright`` as a camera does when held sideways: the pixels stored turned a quarter
    anticlockwise, with EXIF Orientation 6 ("rotate 90 CW") telling viewers to turn them back."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    stored = np.ascontiguousarray(np.rot90(upright, k=1))
    Image.fromarray(stored, "RGB").save(path, "JPEG", quality=quality, exif=exif)
    return path


def adobe_rgb_from_srgb(rgb: np.ndarray, adobe_icc: Path) -> np.ndarray:
    """8-bit sRGB -> the same colours in Adobe RGB (1998), with littleCMS (as editors export)."""
    from PIL import Image, ImageCms

    out = ImageCms.profileToProfile(
        Image.fromarray(rgb, "RGB"),
        ImageCms.createProfile("sRGB"),
        ImageCms.getOpenProfile(str(adobe_icc)),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    assert out is not None
    return np.asarray(out)


def save_tagged(path: Path, rgb: np.ndarray, icc: bytes, fmt: str = "PNG") -> Path:
    """Save 8-bit ``rgb`` with the ICC profile ``icc`` embedded (Pillow)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(rgb, "RGB").save(path, fmt, icc_profile=icc, **kwargs)
    return path


def save_tiff16(path: Path, rgb16: np.ndarray, icc: Optional[bytes] = None) -> Path:
    """Save ``HxWx3`` uint16 RGB as a 16-bit TIFF (tifffile), with ``icc`` embedded if given."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    extratags = [(34675, 7, len(icc), icc, True)] if icc else []
    tifffile.imwrite(path, rgb16, photometric="rgb", extratags=extratags, metadata=None)
    return path


def sixteen_bit(upright: np.ndarray, seed: int = 0) -> np.ndarray:
    """8-bit photo -> 16-bit with the low byte filled (values no 8-bit file can hold)."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=upright.shape, dtype=np.int64)
    return (upright.astype(np.int64) * 256 + low).astype(np.uint16)
