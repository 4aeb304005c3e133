"""Real test photos made from the FiveK sample: phone-style JPEGs with orientation and camera
EXIF, Adobe RGB-tagged PNGs, grey, RGBA, 16-bit and HEIC files (all small crops)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'tiff:Orientation="6"><dc:creator>Test Photographer</dc:creator></rdf:Description>'
    b"</rdf:RDF></x:xmpmeta>"
)


def fivek_crop(fivek_dir: Path, name: str = "a4576.png", h: int = 97, w: int = 131) -> np.ndarray:
    """An odd-sized HxWx3 uint8 RGB crop of a real FiveK photo."""
    rgb = np.asarray(Image.open(fivek_dir / "source" / name).convert("RGB"))
    return np.ascontiguousarray(rgb[:h, :w])


def camera_exif(orientation: int = 1, width: int = 0, height: int = 0) -> Image.Exif:
    """EXIF as a phone writes it: make, model, capture date, GPS and the orientation."""
    exif = Image.Exif()
    exif[0x010F] = "Google"
    exif[0x0110] = "Pixel 7"
    exif[0x0132] = "2024:05:06 07:08:09"
    exif[0x0112] = orientation
    exif.get_ifd(0x8769).update(
        {
            0x9003: "2024:05:06 07:08:09",
            0x829A: (1.0 / 120.0),
            0xA002: width,
            0xA003: height,
        }
    )
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 29.5), 3: "E", 4: (2.0, 17.0, 40.0)})
    return exif


def stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The array a camera stores so that showing it with ``orientation`` gives ``upright``
    (the inverse of the display transform, built with Pillow's transpose operations)."""
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,  # stored turned anticlockwise, shown turned clockwise
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    im = Image.fromarray(upright)
    return np.asarray(im if inverse is None else im.transpose(inverse))


def phone_jpeg(upright: np.ndarray, orientation: int, subsampling: int = 2) -> bytes:
    """A phone-style JPEG: stored turned, tagged with ``orientation``, camera EXIF and XMP."""
    stored = stored_for(upright, orientation)
    buf = io.BytesIO()
    Image.fromarray(stored).save(
        buf,
        "JPEG",
        quality=92,
        subsampling=subsampling,
        exif=camera_exif(orientation, stored.shape[1], stored.shape[0]),
        xmp=XMP,
    )
    return buf.getvalue()


def adobe_icc(shared_dir: Path) -> bytes:
    """The CC0 Adobe RGB (1998)-compatible profile in ``shared/data/icc``."""
    return (shared_dir / "data" / "icc" / "AdobeRGB1998.icc").read_bytes()


def srgb_to_adobe(rgb: np.ndarray, icc: bytes) -> np.ndarray:
    """An sRGB uint8 photo converted into Adobe RGB (``icc``) with littleCMS (relative
    colorimetric)."""
    src = ImageCms.createProfile("sRGB")
    dst = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    out = ImageCms.profileToProfile(
        Image.fromarray(rgb), src, dst, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
    )
    assert out is not None
    return np.asarray(out)


def pillow_bytes(arr: np.ndarray, fmt: str, mode: Optional[str] = None, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, fmt, **kwargs)
    return buf.getvalue()


def png16_bytes(arr: np.ndarray) -> bytes:
    """16-bit PNG (RGB, RGBA or grey) written by OpenCV, untagged."""
    if arr.ndim == 3:
        order = [2, 1, 0, 3][: arr.shape[2]]
        arr = arr[:, :, order]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    assert ok
    return buf.tobytes()


def to16(rgb: np.ndarray) -> np.ndarray:
    """uint8 -> uint16 with low bits that 8 bits cannot hold (a real 16-bit signal)."""
    return (rgb.astype(np.uint16) * 257 + np.uint16(91)).astype(np.uint16)


# A made-up camera for the DNG files below: its sensor sees linear sRGB through this mixing
# matrix (rows sum to 1, so white stays white), and its as-shot white balance is this neutral.
DNG_CAMERA_MIX = np.array([[0.80, 0.15, 0.05], [0.10, 0.80, 0.10], [0.05, 0.20, 0.75]])
DNG_NEUTRAL = (0.5, 1.0, 0.7)
DNG_BLACK, DNG_WHITE = 256, 16383  # a 14-bit sensor
# XYZ (D65) -> linear sRGB (IEC 61966-2-1)
_XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB -> float64 linear light in [0, 1] (the sRGB curve inverted)."""
    x = rgb.astype(np.float64) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _rationals(values: np.ndarray) -> list:
    out = []
    for v in np.ravel(values):
        out += [int(round(float(v) * 1_000_000)), 1_000_000]
    return out


def bayer_dng(upright: np.ndarray, orientation: int = 1, exif: bool = True) -> bytes:
    """A DNG of a made-up 14-bit camera that photographed ``upright`` (even-sized uint8 sRGB):
    the photo is stored turned for ``orientation``, linearised, mixed by
    :data:`DNG_CAMERA_MIX`, tinted by :data:`DNG_NEUTRAL` and sampled through an RGGB Bayer
    filter. IFD0 (tifffile) holds the sensor data, DNGVersion, the CFA tags, ColorMatrix1
    (XYZ -> camera), AsShotNeutral, BlackLevel / WhiteLevel, Make / Model and Orientation;
    with ``exif``, exiv2 adds an Exif and a GPS sub-IFD (capture date, exposure, ISO, GPS)."""
    import tifffile

    stored = stored_for(upright, orientation)
    camera = srgb_to_linear(stored) @ DNG_CAMERA_MIX.T * np.asarray(DNG_NEUTRAL)
    cfa = np.empty(camera.shape[:2])
    cfa[0::2, 0::2] = camera[0::2, 0::2, 0]  # R G
    cfa[0::2, 1::2] = camera[0::2, 1::2, 1]  # G B
    cfa[1::2, 0::2] = camera[1::2, 0::2, 1]
    cfa[1::2, 1::2] = camera[1::2, 1::2, 2]
    sensor = np.round(DNG_BLACK + cfa * (DNG_WHITE - DNG_BLACK)).astype(np.uint16)
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "LPTN Test DNG Camera", True),  # UniqueCameraModel
        (271, "s", 0, "LPTN", True),  # Make
        (272, "s", 0, "Test DNG Camera", True),  # Model
        (274, "H", 1, orientation, True),
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: R G / G B
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50714, "H", 1, DNG_BLACK, True),  # BlackLevel
        (50717, "H", 1, DNG_WHITE, True),  # WhiteLevel
        (50721, "2i", 9, _rationals(DNG_CAMERA_MIX @ _XYZ_TO_SRGB), True),  # ColorMatrix1
        (50778, "H", 1, 21, True),  # CalibrationIlluminant1: D65
        (50728, "2I", 3, _rationals(np.asarray(DNG_NEUTRAL)), True),  # AsShotNeutral
    ]
    buf = io.BytesIO()
    tifffile.imwrite(buf, sensor, photometric=32803, extratags=tags, metadata=None, software=False)
    if not exif:
        return buf.getvalue()
    import exiv2

    image = exiv2.ImageFactory.open(buf.getvalue())
    image.readMetadata()
    data = image.exifData()
    data["Exif.Photo.DateTimeOriginal"] = "2024:05:06 07:08:09"
    data["Exif.Photo.ExposureTime"] = "1/125"
    data["Exif.Photo.FNumber"] = "28/10"
    data["Exif.Photo.ISOSpeedRatings"] = "400"
    data["Exif.GPSInfo.GPSLatitudeRef"] = "N"
    data["Exif.GPSInfo.GPSLatitude"] = "48/1 51/1 295/10"
    image.writeMetadata()
    return bytes(image.io().data())


def exiftool(data: bytes, *tags: str) -> Dict[str, Any]:
    """What exiftool (an independent reader) finds in ``data``: ``{"GROUP:Tag": value}``, with
    numeric values (``-n``) and family-0 groups (``EXIF``, ``IPTC``, ``PNG``, ``XMP``, ``File``).
    ``tags`` (``"-IPTC:all"``...) narrow the output. Skips the test when exiftool is absent."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    run = subprocess.run(
        ["exiftool", "-j", "-n", "-G0", "-struct", *tags, "-"],
        input=data,
        capture_output=True,
        check=True,
    )
    found: Dict[str, Any] = json.loads(run.stdout)[0]
    return found


# What the IPTC tests write and expect exiftool to find again.
IPTC_FIELDS = {
    "Iptc.Application2.Keywords": ["Zürich", "harbour"],
    "Iptc.Application2.Byline": ["Anna Müller"],
    "Iptc.Application2.City": ["Zürich"],
    "Iptc.Application2.Caption": ["Boats at dawn, lake Zürich"],
}
IPTC_EXPECTED = {
    "IPTC:Keywords": ["Zürich", "harbour"],
    "IPTC:By-line": "Anna Müller",
    "IPTC:City": "Zürich",
    "IPTC:Caption-Abstract": "Boats at dawn, lake Zürich",
}


def with_iptc(data: bytes) -> bytes:
    """``data`` (JPEG, TIFF or PNG) with IPTC keywords, by-line, city and caption in UTF-8,
    written by exiv2 as photo catalogues write them. Skips the test without exiv2."""
    exiv2 = pytest.importorskip("exiv2", reason="the exiv2 binding (extra tiff-exif) writes it")
    image = exiv2.ImageFactory.open(data)
    image.readMetadata()
    iptc = image.iptcData()
    iptc["Iptc.Envelope.CharacterSet"] = "\x1b%G"  # UTF-8
    for key, values in IPTC_FIELDS.items():
        for value in values:
            iptc.add(exiv2.IptcKey(key), exiv2.StringValue(value))
    image.writeMetadata()
    return bytes(image.io().data())


def exiftool_write(data: bytes, *assignments: str) -> bytes:
    """``data`` with tags set by exiftool (``"-EXIF:InteropIndex=R03"``...), as a camera or a
    photo tool writes them. Skips the test when exiftool is absent."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    run = subprocess.run(
        ["exiftool", "-o", "-", *assignments, "-"], input=data, capture_output=True, check=True
    )
    return run.stdout
