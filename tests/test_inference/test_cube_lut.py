"""``.cube`` files: the format, the round trip, and ffmpeg's ``lut3d`` applying the model's LUT."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from inference_test_utils import apply_cube_with_ffmpeg, graded_lut_network

from lptn.inference.cube_lut import read_cube, write_cube


def test_write_cube_layout(tmp_path: Path) -> None:
    lut = torch.zeros(3, 2, 2, 2)
    lut[0, 0, 0, 1] = 1.0  # red output at input (r, g, b) = (1, 0, 0)
    lut[2, 1, 0, 0] = 0.25  # blue output at input (0, 0, 1)
    text = write_cube(tmp_path / "x.cube", lut, title='my "look"\nline').read_text()
    lines = text.splitlines()
    assert lines[:4] == [
        "TITLE \"my 'look' line\"",
        "LUT_3D_SIZE 2",
        "DOMAIN_MIN 0 0 0",
        "DOMAIN_MAX 1 1 1",
    ]
    # Red changes fastest: row 1 is (r, g, b) = (1, 0, 0), row 4 is (0, 0, 1).
    assert lines[4:] == ["0 0 0", "1 0 0", "0 0 0", "0 0 0", "0 0 0.25", "0 0 0", "0 0 0", "0 0 0"]


def test_round_trip(tmp_path: Path) -> None:
    lut = torch.rand(3, 33, 33, 33, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    back = read_cube(write_cube(tmp_path / "r.cube", lut))
    assert back.shape == (3, 33, 33, 33)
    assert (back - lut).abs().max().item() < 1e-6


@pytest.mark.parametrize(
    "text, message",
    [
        ("LUT_3D_SIZE 2\n0 0 0\n", "LUT_3D_SIZE 2 needs 8 rows, found 1"),
        ("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n", "line 1: a 1D LUT"),
        ("LUT_3D_SIZE 2\nDOMAIN_MAX 2 2 2\n", "line 2: 'DOMAIN_MAX 2 2 2'"),
        ("LUT_3D_SIZE 2\n0 0 x\n", "line 2: not three numbers"),
        ("0 0 0\n", "no LUT_3D_SIZE line"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(ValueError, match=str(path)) as err:
        read_cube(path)
    assert message in str(err.value)


def test_write_refuses_bad_luts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"x.cube: LUT must be \(3, S, S, S\)"):
        write_cube(tmp_path / "x.cube", torch.zeros(3, 4, 4, 5))
    with pytest.raises(ValueError, match="x.cube: LUT has non-finite values"):
        write_cube(tmp_path / "x.cube", torch.full((3, 2, 2, 2), float("nan")))
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_lut3d_applies_the_models_lut_within_one_level(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    photo = sorted((fivek_sample_dir / "source").glob("*.png"))[0]
    rgb8 = cv2.cvtColor(cv2.imread(str(photo), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    image = torch.from_numpy(rgb8.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    net = graded_lut_network()
    with torch.no_grad():
        lut = net.predict_lut(image)
        model_out = net.apply_lut(image, lut)[0].clamp(0, 1)
    want = (model_out.numpy().transpose(1, 2, 0) * 255).round().astype(np.int16)
    # The grade is not a no-op: a LUT ignored by ffmpeg would fail the comparison.
    assert np.abs(want - rgb8).max() > 20
    cube = write_cube(tmp_path / "look.cube", lut[0], title=photo.stem)
    got = apply_cube_with_ffmpeg(photo, cube, tmp_path / "out.png").astype(np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1
