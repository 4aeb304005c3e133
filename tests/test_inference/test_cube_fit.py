"""Fitting a ``.cube`` to what the official LPTN does to a FiveK photo, judged through ffmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from inference_test_utils import apply_cube_with_ffmpeg

from lptn.archs.lut3d_arch import identity_lut
from lptn.inference.cube_fit import fit_lut, fit_psnr
from lptn.inference.cube_lut import write_cube


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_lut_fitted_to_lptn_carries_its_look_into_ffmpeg(
    tmp_path: Path, fivek_sample_dir: Path, official_net: torch.nn.Module
) -> None:
    photo = fivek_sample_dir / "source" / "a0212.png"
    rgb8 = cv2.cvtColor(cv2.imread(str(photo), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    image = torch.from_numpy(rgb8.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.no_grad():
        lptn_out = official_net(image)
    lut = fit_lut([image], [lptn_out])
    assert lut.shape == (3, 33, 33, 33)
    # The photo before the fit is far from LPTN's output; the fitted LUT is close
    # (measured: 17.3 dB and 33.5 dB).
    assert fit_psnr(image, lptn_out, identity_lut(33)) < 20
    assert fit_psnr(image, lptn_out, lut) > 32
    cube = write_cube(tmp_path / "lptn_look.cube", lut, title="LPTN a0212")
    got = apply_cube_with_ffmpeg(photo, cube, tmp_path / "out.png")
    want = (lptn_out[0].clamp(0, 1).numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    assert _psnr8(got, want) > 32


def test_mismatched_pairs_are_named() -> None:
    with pytest.raises(ValueError, match=r"pair 0: shapes \(1, 3, 4, 4\) and \(1, 3, 4, 5\)"):
        fit_lut([torch.rand(1, 3, 4, 4)], [torch.rand(1, 3, 4, 5)])
