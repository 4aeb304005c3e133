"""A camera RAW (a DNG made from a FiveK photo) sent to a real ``lptn-serve`` process: answered
as a 16-bit TIFF equal to ``lptn-enhance``'s output, or in the ``format=`` asked for."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from photo_samples import bayer_dng, fivek_crop
from PIL import Image
from serve_test_utils import Server, get_json, multipart, post

from lptn.engine.cli import enhance_main

pytest.importorskip("rawpy", reason="RAW tests need the 'raw' extra (pip install 'lptn[raw]')")
pytest.importorskip("exiv2", reason="the test DNGs get their Exif sub-IFD from exiv2")


@pytest.fixture(scope="module")
def dng(fivek_sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``camera.dng``: 120x176 upright, stored turned (orientation 6), with camera EXIF."""
    path = tmp_path_factory.mktemp("serve_raw") / "camera.dng"
    path.write_bytes(bayer_dng(fivek_crop(fivek_sample_dir, h=120, w=176), orientation=6))
    return path


def test_dng_upload_is_answered_as_lptn_enhance_writes_it(
    server: Server, dng: Path, tmp_path: Path
) -> None:
    assert "raw" in get_json(server.url + "/healthz")["input_formats"]
    out = tmp_path / "cli"
    args = ["--input", str(dng), "--output", str(out), "--device", "cpu", "--no-progress"]
    assert enhance_main(args) == 0
    # no file name travels with a plain body: the server knows the DNG by its content
    status, headers, body = post(server.url, dng.read_bytes(), "image/x-adobe-dng")
    assert status == 200, body[:300]
    assert headers["content-type"] == "image/tiff"
    assert 'filename="enhanced.tif"' in headers["content-disposition"]
    assert body == (out / "camera.tif").read_bytes(), "the server's result differs"
    pixels = tifffile.imread(io.BytesIO(body))
    assert pixels.dtype == np.uint16 and pixels.shape == (120, 176, 3)


def test_dng_upload_in_the_format_asked_for(server: Server, dng: Path) -> None:
    body, content_type = multipart("image", "camera.dng", dng.read_bytes(), "image/x-adobe-dng")
    status, headers, result = post(server.url, body, content_type, "?format=jpeg")
    assert status == 200, result[:300]
    assert headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(result)) as im:
        assert im.format == "JPEG" and im.size == (176, 120)
        exif = im.getexif()
        assert exif[0x0110] == "Test DNG Camera" and exif[0x0112] == 1
        assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"


def test_dng_upload_without_the_extra_is_refused_as_unsupported(
    dng: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lptn.serve.photo_adapter import UnsupportedPhoto, probe_photo

    monkeypatch.setitem(sys.modules, "rawpy", None)  # as if the raw extra were not installed
    with pytest.raises(UnsupportedPhoto, match=r"the upload: .*pip install 'lptn\[raw\]'"):
        probe_photo(dng.read_bytes())  # the server answers 415 with this message
