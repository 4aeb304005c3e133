"""Shared fixtures for the metric tests: the real FiveK sample pairs as RGB uint8 arrays."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import pytest

FIVEK_SAMPLE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fivek_sample"


def read_rgb(path: Path) -> np.ndarray:
    """Read an 8-bit image file as (H, W, 3) RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


@pytest.fixture(scope="session")
def fivek_pairs() -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """All (name, source, target) pairs of the FiveK sample, RGB uint8, sorted by name."""
    sources = sorted((FIVEK_SAMPLE / "source").glob("*.png"))
    if not sources:
        pytest.skip(f"FiveK sample not found at {FIVEK_SAMPLE.resolve()}")
    return [(p.name, read_rgb(p), read_rgb(FIVEK_SAMPLE / "target" / p.name)) for p in sources]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
