"""``lptn-enhance --export-lut DIR``: each photo's ``.cube``, applied by ffmpeg's ``lut3d`` to
the upright sRGB photo, gives lptn-enhance's output; LPTN weights get one error line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from inference_test_utils import apply_cube_with_ffmpeg, graded_lut_network
from PIL import Image, ImageOps

from lptn.engine.cli import enhance_main
from lptn.photo import PhotoEnhancer
from lptn.platform.checkpoint_io import save_network

LUT_ARCH = {"type": "ImageAdaptive3DLUT", "num_luts": 3, "lut_size": 33}


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture
def lut_weights(tmp_path: Path) -> Path:
    path = tmp_path / "lut3d.pth"
    save_network(graded_lut_network(), path, arch=LUT_ARCH)
    return path


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_exported_luts_reproduce_the_outputs_in_ffmpeg(
    tmp_path: Path, fivek_sample_dir: Path, lut_weights: Path
) -> None:
    png, jpeg_from = sorted((fivek_sample_dir / "source").glob("*.png"))[:2]
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(png, photos / png.name)
    # A phone JPEG: stored turned, EXIF orientation 6; 4:4:4 at quality 100 so the output
    # JPEG stays within a level of the exact result.
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(jpeg_from) as im:
        upright_size = im.size
        stored = im.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    phone = photos / "turned.jpg"
    stored.save(phone, "JPEG", quality=100, subsampling=0, exif=exif)

    out, luts = tmp_path / "out", tmp_path / "luts"
    args = ["--weights", str(lut_weights), "--input", str(photos), "--output", str(out)]
    extra = ["--export-lut", str(luts), "--jpeg-quality", "100", "--no-progress"]
    assert enhance_main([*args, *extra]) == 0
    assert sorted(p.relative_to(luts).as_posix() for p in luts.rglob("*.cube")) == [
        png.with_suffix(".cube").name,
        "turned.cube",
    ]

    # The upright sRGB photos, as a viewer shows them.
    with Image.open(phone) as im:
        upright_phone = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert upright_phone.shape[1::-1] == upright_size != stored.size
    Image.fromarray(upright_phone).save(tmp_path / "upright_phone.png")
    exact = PhotoEnhancer.from_weights(lut_weights, device="cpu")
    # The PNG output is lossless: ffmpeg's grade is within a level of it.
    got = apply_cube_with_ffmpeg(
        photos / png.name, luts / png.with_suffix(".cube").name, tmp_path / "a.png"
    )
    want = _rgb(out / png.name)
    assert np.abs(want.astype(int) - _rgb(png).astype(int)).max() > 20  # a visible grade
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    # The JPEG output went through a JPEG encoder, so ffmpeg's grade of the upright photo is
    # held to within a level of what lptn-enhance encoded (the exact network on the upright
    # sRGB pixels); a LUT from the stored, turned pixels is ~90 levels off at places.
    got = apply_cube_with_ffmpeg(
        tmp_path / "upright_phone.png", luts / "turned.cube", tmp_path / "b.png"
    )
    assert np.abs(got.astype(int) - exact.enhance_rgb(upright_phone).astype(int)).max() <= 1
    written = _rgb(out / "turned.jpg").astype(int)
    assert got.shape == written.shape and np.abs(got.astype(int) - written).mean() < 1
    assert f'TITLE "{png.name}"' in (luts / png.with_suffix(".cube").name).read_text()
    assert 'TITLE "turned.jpg"' in (luts / "turned.cube").read_text()


def test_lptn_weights_get_one_error_line_before_any_photo(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path, capsys
) -> None:
    photo = sorted((fivek_sample_dir / "source").glob("*.png"))[0]
    out = tmp_path / "out"
    args = ["--weights", str(official_checkpoint), "--input", str(photo), "--output", str(out)]
    assert enhance_main([*args, "--export-lut", str(tmp_path / "luts"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --export-lut"), err
    assert "LPTN" in err[0] and "ImageAdaptive3DLUT" in err[0]
    assert not list(out.rglob("*.png")) and not (tmp_path / "luts").exists()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_the_lut_holds_the_strength_and_the_grey_conversion(
    tmp_path: Path, fivek_sample_dir: Path, lut_weights: Path
) -> None:
    png = sorted((fivek_sample_dir / "source").glob("*.png"))[0]
    photos = tmp_path / "in"
    photos.mkdir()
    shutil.copy(png, photos / "colour.png")
    with Image.open(png) as im:
        im.convert("L").save(photos / "grey.png")
    out, luts = tmp_path / "out", tmp_path / "luts"
    args = ["--weights", str(lut_weights), "--input", str(photos), "--output", str(out)]
    extra = ["--export-lut", str(luts), "--strength", "0.5", "--no-progress"]
    assert enhance_main([*args, *extra]) == 0
    for name in ("colour", "grey"):
        got = apply_cube_with_ffmpeg(
            photos / f"{name}.png", luts / f"{name}.cube", tmp_path / "f.png"
        )
        want = _rgb(out / f"{name}.png").astype(int)
        assert np.abs(want - _rgb(photos / f"{name}.png").astype(int)).max() > 10, name
        # The enhancer blends the clipped network output; the LUT's table is clipped, which
        # differs only within the cells that straddle 0 or 1: a level more at a few pixels.
        diff = np.abs(got.astype(int) - want)
        assert diff.max() <= 2 and (diff > 1).mean() < 1e-3, (name, (diff > 1).mean())
