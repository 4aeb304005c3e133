"""Helpers shared by the inference tests (fast path, .cube files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import torch

from lptn.archs import build_network


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
