"""Helpers shared by the inference tests (fast path, .cube files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import torch

from lptn.archs import build_network
from lptn.archs.lut3d_arch import ImageAdaptive3DLUT, identity_lut


def random_lptn(arch: str, num_high: int, seed: int = 0, nrb: int = 1) -> torch.nn.Module:
    """A small LPTN / LPTNPaper with PyTorch's default random init and random biases (so
    every mask block matters), eval mode."""
    torch.manual_seed(seed)
    net = build_network({"type": arch, "nrb_low": nrb, "nrb_high": nrb, "num_high": num_high})
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return net.eval()


def apply_cube_with_ffmpeg(photo: Path, cube: Path, out: Path) -> np.ndarray:
    """``photo`` graded by ffmpeg's ``lut3d`` filter (trilinear, rgb24 in and out) with the
    ``.cube`` file ``cube``: HxWx3 uint8 RGB, written through ``out``. ffmpeg, not lptn, reads
    the LUT, so this is an independent check of the file."""
    done = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-i", str(photo),
            "-vf", f"format=rgb24,lut3d=file={cube}:interp=trilinear,format=rgb24",
            "-pix_fmt", "rgb24", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def graded_lut_network() -> ImageAdaptive3DLUT:
    """A 3D-LUT network whose bases make a visible, photo-dependent grade (not the identity):
    a gamma curve, a channel cross-talk and a random smooth perturbation."""
    net = ImageAdaptive3DLUT().eval()
    ident = identity_lut(33)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        net.basis_luts[1] = ident.pow(0.6) - ident
        net.basis_luts[2] = 0.3 * (ident[[1, 2, 0]] - ident)
        noise = torch.randn(1, 3, 5, 5, 5, generator=gen)
        smooth = torch.nn.functional.interpolate(noise, size=(33, 33, 33), mode="trilinear")
        net.basis_luts[0] += 0.05 * smooth[0]
        net.predictor.model[-1].weight.normal_(0, 0.01, generator=gen)
    return net
