"""Training data is read as lptn-enhance reads photos: upright, in sRGB, 16 bits kept.

Every file here is made from the FiveK sample the way a camera or an editor saves it, and
judged against the upright sRGB original (exiftool confirms what the files hold).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from photo_files import (
    adobe_rgb_from_srgb,
    fivek_upright,
    save_tagged,
    save_tiff16,
    save_turned_jpeg,
    sixteen_bit,
)

from lptn.data import build_dataset
from lptn.data.image_io import read_image
from lptn.data.image_probe import probe_file

NAME = "a0212"  # 512x341 (HxW), portrait


def _exiftool(*args: str) -> str:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (it confirms the test files' tags)")
    return subprocess.run(
        ["exiftool", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def _paired(lq: Path, gt: Path, **extra) -> dict:
    return {
        "type": "PairedImageDataset",
        "dataroot_lq": str(lq),
        "dataroot_gt": str(gt),
        "io_backend": {"type": "disk"},
        **extra,
    }


def test_a_sideways_camera_jpeg_pairs_with_its_upright_export(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    upright = fivek_upright(fivek_sample_dir, NAME)
    lq = save_turned_jpeg(tmp_path / "lq" / f"{NAME}.jpg", upright)
    assert _exiftool("-n", "-s3", "-Orientation", str(lq)) == "6"
    (tmp_path / "gt").mkdir()
    shutil.copy(fivek_sample_dir / "target" / f"{NAME}.png", tmp_path / "gt" / f"{NAME}.png")
    ds = build_dataset(_paired(tmp_path / "lq", tmp_path / "gt", phase="val"), "datasets.val")
    item = ds[0]
    assert item["lq"].shape == item["gt"].shape == (3, *upright.shape[:2])
    # upright pixels, not only the upright size: close to the original up to JPEG loss
    diff = np.abs(item["lq"].permute(1, 2, 0).numpy() * 255 - upright.astype(np.float32))
    assert diff.mean() < 2.0
    assert probe_file(lq) == upright.shape[:2]


def test_a_square_sideways_photo_is_turned_upright_not_trained_rotated(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    # A square pair has one size either way: only the orientation tells the pixels apart.
    upright = np.ascontiguousarray(fivek_upright(fivek_sample_dir, NAME)[:300, :300])
    path = save_turned_jpeg(tmp_path / "square.jpg", upright)
    read = read_image(path).astype(np.float32)
    assert np.abs(read - upright).mean() < 2.0
    assert np.abs(read - np.rot90(upright, k=1)).mean() > 20.0


def test_an_adobe_rgb_export_is_converted_to_srgb(
    tmp_path: Path, fivek_sample_dir: Path, adobe_icc: Path
) -> None:
    upright = fivek_upright(fivek_sample_dir, NAME, "target")
    adobe = adobe_rgb_from_srgb(upright, adobe_icc)
    assert np.abs(adobe.astype(int) - upright).mean() > 3  # the test could tell them apart
    path = save_tagged(tmp_path / "adobe.png", adobe, adobe_icc.read_bytes())
    assert "Adobe RGB" in _exiftool("-s3", "-ProfileDescription", str(path))
    read = read_image(path)
    assert read.dtype == np.uint8
    # littleCMS there and back in 8 bits: within a few levels of the sRGB original
    assert np.abs(read.astype(int) - upright).mean() < 1.0


def test_a_16_bit_tiff_keeps_full_precision_as_float(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    lq16 = sixteen_bit(fivek_upright(fivek_sample_dir, NAME))
    gt16 = sixteen_bit(fivek_upright(fivek_sample_dir, NAME, "target"), seed=1)
    save_tiff16(tmp_path / "lq" / f"{NAME}.tif", lq16)
    save_tiff16(tmp_path / "gt" / f"{NAME}.tiff", gt16)
    assert _exiftool("-s3", "-BitsPerSample", str(tmp_path / "lq" / f"{NAME}.tif")) == "16 16 16"
    ds = build_dataset(_paired(tmp_path / "lq", tmp_path / "gt", phase="val"), "datasets.val")
    item = ds[0]
    expected = torch.from_numpy(lq16.astype(np.float32) / 65535).permute(2, 0, 1)
    assert torch.equal(item["lq"], expected)
    assert torch.equal(
        torch.round(item["gt"] * 65535).to(torch.int64),
        torch.from_numpy(gt16.astype(np.int64)).permute(2, 0, 1),
    )


def test_a_16_bit_adobe_rgb_tiff_stays_16_bit_in_srgb(
    tmp_path: Path, fivek_sample_dir: Path, adobe_icc: Path
) -> None:
    upright = fivek_upright(fivek_sample_dir, NAME)
    adobe16 = adobe_rgb_from_srgb(upright, adobe_icc).astype(np.uint16) * 257
    path = save_tiff16(tmp_path / "adobe16.tif", adobe16, adobe_icc.read_bytes())
    read = read_image(path)
    assert read.dtype == np.uint16
    assert np.abs(read.astype(np.float64) / 257 - upright).mean() < 1.0
