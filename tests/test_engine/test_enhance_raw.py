"""lptn-enhance on a folder holding a camera RAW (a DNG made from a FiveK photo): a 16-bit TIFF
by default, a JPEG with ``--raw-format jpeg``, upright, with the camera's EXIF (exiftool)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.engine.cli import enhance_main
from lptn.photo import decode_photo

# The photo tests' helpers make the DNG files.
PHOTO_TESTS = str(Path(__file__).resolve().parents[1] / "test_photo")
if PHOTO_TESTS not in sys.path:
    sys.path.append(PHOTO_TESTS)
from photo_samples import bayer_dng, fivek_crop, pillow_bytes  # noqa: E402

pytest.importorskip("rawpy", reason="RAW tests need the 'raw' extra (pip install 'lptn[raw]')")
pytest.importorskip("exiv2", reason="the test DNGs get their Exif sub-IFD from exiv2")


def exiftool(path: Path) -> Dict[str, Any]:
    tool = shutil.which("exiftool")
    if tool is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    done = subprocess.run(
        [tool, "-j", "-n", "-G1", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)[0]


@pytest.fixture(scope="module")
def library(fivek_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``camera.DNG`` (128x192 upright, stored turned: orientation 6) and a PNG."""
    folder = tmp_path_factory.mktemp("raw_library")
    scene = fivek_crop(fivek_sample_dir, h=128, w=192)
    (folder / "camera.DNG").write_bytes(bayer_dng(scene, orientation=6))
    (folder / "photo.png").write_bytes(pillow_bytes(scene, "PNG"))
    return folder


def _enhance(library: Path, out: Path, *extra: str) -> None:
    args = ["--input", str(library), "--output", str(out), "--device", "cpu", "--no-progress"]
    assert enhance_main([*args, "--path", "exact", *extra]) == 0


def test_raw_becomes_a_16bit_tiff_by_default(
    library: Path, tmp_path: Path, official_checkpoint: Path
) -> None:
    out = tmp_path / "out"
    _enhance(library, out, "--weights", str(official_checkpoint))
    assert sorted(p.name for p in out.iterdir()) == ["camera.tif", "photo.png"]
    pixels = tifffile.imread(out / "camera.tif")
    assert pixels.dtype == np.uint16 and pixels.shape == (128, 192, 3)
    # the official network applied to the developed RAW, at 16 bits
    developed = decode_photo((library / "camera.DNG").read_bytes(), "camera.DNG").pixels
    net = load_network_weights(build_network({"type": "LPTN"}), official_checkpoint).eval()
    x = torch.from_numpy(developed.astype(np.float32) / 65535.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    expected = np.round(y * 65535.0).astype(np.int64)
    assert np.abs(pixels.astype(np.int64) - expected).max() <= 1  # float32 rounding
    tags = exiftool(out / "camera.tif")
    assert tags["IFD0:BitsPerSample"] == "16 16 16" and tags["IFD0:Orientation"] == 1
    assert tags["IFD0:Model"] == "Test DNG Camera"
    assert tags["ExifIFD:DateTimeOriginal"] == "2024:05:06 07:08:09"
    assert tags["ExifIFD:ISO"] == 400 and tags["GPS:GPSLatitudeRef"] == "N"


def test_raw_format_jpeg_writes_a_jpeg(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _enhance(library, out, "--raw-format", "jpeg")
    assert sorted(p.name for p in out.iterdir()) == ["camera.jpg", "photo.png"]
    with Image.open(out / "camera.jpg") as im:
        assert im.format == "JPEG" and im.size == (192, 128)
    tags = exiftool(out / "camera.jpg")
    assert tags["IFD0:Orientation"] == 1 and tags["IFD0:Make"] == "LPTN"
    assert tags["ExifIFD:ExposureTime"] == pytest.approx(1 / 125)
