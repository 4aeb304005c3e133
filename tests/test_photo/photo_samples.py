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
