"""Camera RAW inputs: DNG files made from a real FiveK photo through a Bayer filter, developed
by LibRaw (rawpy) upright in 16-bit sRGB, their EXIF kept (judged by exiftool), and the plain
errors: no rawpy, data LibRaw cannot read, too many pixels."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import tifffile
from photo_samples import bayer_dng, fivek_crop, pillow_bytes

from lptn.photo import PhotoError, decode_photo, encode_photo, photo_file, read_photo
from lptn.photo.colour import srgb_profile_bytes
from lptn.photo.raw_file import is_raw

pytest.importorskip("rawpy", reason="RAW tests need the 'raw' extra (pip install 'lptn[raw]')")
pytest.importorskip("exiv2", reason="the test DNGs get their Exif sub-IFD from exiv2")


@pytest.fixture(scope="module")
def scene(fivek_sample_dir: Path) -> np.ndarray:
    """A 256x384 uint8 sRGB crop of FiveK a4576: what the made-up camera photographed."""
    img = fivek_crop(fivek_sample_dir, h=256, w=384)
    img.flags.writeable = False
    return img


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two arrays on the 0..255 scale."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def exiftool(path: Path) -> Dict[str, Any]:
    """Every tag exiftool reads from ``path``, numeric values (``-n``), keyed ``Group:Tag``."""
    tool = shutil.which("exiftool")
    if tool is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    done = subprocess.run(
        [tool, "-j", "-n", "-G1", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)[0]


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_dng_is_developed_upright_with_camera_white_balance_and_matrix(
    scene: np.ndarray, orientation: int, tmp_path: Path
) -> None:
    path = tmp_path / "camera.dng"
    path.write_bytes(bayer_dng(scene, orientation))
    photo = read_photo(path)
    assert photo.format == "RAW" and photo.pixels.dtype == np.uint16
    assert photo.pixels.shape == scene.shape  # upright: 256 rows, 384 columns
    assert photo_file.probe_photo(path) == (256, 384)
    assert photo.icc == srgb_profile_bytes()
    # The photo the sensor saw comes back: white balance (a 2x red, 1.4x blue tint undone),
    # colour matrix and sRGB curve within rounding; AHD demosaicing costs fine detail only
    # (43.0 dB measured; a missing white balance or matrix gives under 25 dB).
    developed = photo.pixels.astype(np.float64) / 257.0
    assert psnr(developed, scene) > 40.0
    means = developed.reshape(-1, 3).mean(0) - scene.reshape(-1, 3).mean(0)
    assert np.abs(means).max() < 0.5, means  # of 255


def test_raw_is_recognised_by_extension_and_by_content(scene: np.ndarray) -> None:
    dng = bayer_dng(scene[:64, :64], exif=False)
    assert is_raw(dng)  # no name: DNGVersion in the first directory
    assert decode_photo(dng, "upload").format == "RAW"
    tiff = encode_photo(decode_photo(pillow_bytes(scene, "PNG"), "p.png"), "TIFF")
    assert not is_raw(tiff) and decode_photo(tiff, "plain.tif").format == "TIFF"
    # NEF-like: a preview first, the sensor data in a sub-IFD (Pillow would show the preview)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as writer:
        writer.write(scene[:30, :40], photometric="rgb", subfiletype=1, subifds=1)
        writer.write(np.zeros((64, 64), np.uint16), photometric=32803)
    assert is_raw(buf.getvalue())
    for name in ("a.DNG", "b.cr2", "c.CR3", "d.nef", "e.arw", "f.raf", "g.orf", "h.rw2"):
        assert photo_file.is_photo_file(name), name
        assert photo_file.PHOTO_EXTENSIONS[Path(name).suffix.lower()] == "RAW"


def test_raw_exif_is_kept_in_tiff_and_jpeg_outputs(scene: np.ndarray, tmp_path: Path) -> None:
    photo = decode_photo(bayer_dng(scene, orientation=6), "camera.dng")
    assert photo_file.output_format_for(photo.format) == "TIFF"
    for fmt, suffix in (("TIFF", ".tif"), ("JPEG", ".jpg")):
        out = tmp_path / f"developed{suffix}"
        out.write_bytes(encode_photo(photo, fmt))
        tags = exiftool(out)
        assert tags["File:FileType"] == fmt, tags
        assert (tags["IFD0:Make"], tags["IFD0:Model"]) == ("LPTN", "Test DNG Camera")
        assert tags["IFD0:Orientation"] == 1  # the pixels are upright
        assert tags["ExifIFD:DateTimeOriginal"] == "2024:05:06 07:08:09"
        assert tags["ExifIFD:ExposureTime"] == pytest.approx(1 / 125)
        assert tags["ExifIFD:FNumber"] == pytest.approx(2.8)
        assert tags["ExifIFD:ISO"] == 400
        assert tags["GPS:GPSLatitudeRef"] == "N"
        assert tags["GPS:GPSLatitude"] == pytest.approx(48 + 51 / 60 + 29.5 / 3600)
        assert tags["Composite:ImageSize"] == "384 256"  # width, height: upright
    assert exiftool(tmp_path / "developed.tif")["IFD0:BitsPerSample"] == "16 16 16"


def test_raw_exif_without_exiv2_is_read_by_pillow(
    scene: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    dng = bayer_dng(scene[:64, :96])
    monkeypatch.setitem(sys.modules, "exiv2", None)  # as if the tiff-exif extra were absent
    exif = decode_photo(dng, "camera.dng").exif
    assert exif is not None and exif[0x0110] == "Test DNG Camera" and exif[0x0112] == 1
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    assert exif.get_ifd(0x8825)[2] == (48.0, 51.0, 29.5)


def test_raw_without_the_extra_names_it(
    scene: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "camera.dng"
    path.write_bytes(bayer_dng(scene[:64, :64], exif=False))
    monkeypatch.setitem(sys.modules, "rawpy", None)  # as if the raw extra were not installed
    extra = r"extra 'raw' \(pip install 'lptn\[raw\]'"
    with pytest.raises(PhotoError, match=rf"camera.dng: RAW photos need the optional {extra}"):
        read_photo(path)
    with pytest.raises(PhotoError, match=rf"camera.dng: .*{extra}"):
        photo_file.probe_photo(path)


def test_bad_raw_data_gives_plain_photo_errors(scene: np.ndarray, tmp_path: Path) -> None:
    not_raw = tmp_path / "holiday.nef"
    not_raw.write_bytes(pillow_bytes(scene, "JPEG"))
    unreadable = r"holiday.nef: not a RAW file LibRaw reads, or truncated \("
    with pytest.raises(PhotoError, match=unreadable):
        read_photo(not_raw)
    with pytest.raises(PhotoError, match=unreadable):
        photo_file.probe_photo(not_raw)
    dng = bayer_dng(scene[:64, :64], exif=False)
    with pytest.raises(PhotoError, match=r"big.dng: 64x64 is larger than the limit of 4000"):
        decode_photo(dng, "big.dng", max_pixels=4000)
    # cut in the sensor data, or in the header
    with pytest.raises(PhotoError, match=r"cut.dng: cannot be decoded, .* truncated or corrupt"):
        decode_photo(dng[: len(dng) // 2], "cut.dng")
    with pytest.raises(PhotoError, match=r"cut.dng: not a RAW file LibRaw reads, or truncated"):
        decode_photo(dng[:300], "cut.dng")


def test_raw_output_format_choices() -> None:
    assert photo_file.output_format_for("RAW") == "TIFF"
    assert photo_file.output_format_for("RAW", "jpeg") == "JPEG"
    assert photo_file.output_format_for("RAW", "png") == "PNG"
    with pytest.raises(PhotoError, match="RAW photos are written as tiff, png, jpeg, not 'webp'"):
        photo_file.output_format_for("RAW", "webp")
    assert photo_file.output_format_for("HEIF", "png") == "JPEG"  # raw_format is for RAW only
