"""Fixtures for the video tests: one FiveK photo as clip content, the official generator."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from lptn.inference.generator_weights import load_generator
from lptn.platform.runtime import Runtime


def _fivek_input(folder: Path, index: int) -> np.ndarray:
    path = sorted((folder / "source").glob("*.png"))[index]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def photo(fivek_sample_dir: Path) -> np.ndarray:
    """One FiveK input photo, float32 RGB in [0, 1] (clip content)."""
    return _fivek_input(fivek_sample_dir, 0)


@pytest.fixture(scope="session")
def other_photo(fivek_sample_dir: Path) -> np.ndarray:
    """Another FiveK input photo (a scene cut)."""
    return _fivek_input(fivek_sample_dir, 5)


@pytest.fixture(scope="session")
def generator(official_checkpoint: Path) -> nn.Module:
    return load_generator(official_checkpoint).eval()


@pytest.fixture
def cpu_runtime() -> Runtime:
    return Runtime(device=torch.device("cpu"))


@pytest.fixture(autouse=True)
def one_intra_op_thread() -> Iterator[None]:
    """Small frames, and the pipeline's decoder and encoder threads beside the network: one
    intra-op thread avoids oversubscribing a busy CPU (see docs/PERFORMANCE.md)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
