"""Fixtures for the metric tests: the FiveK sample pairs as the uint8 arrays metrics receive."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import pytest


def _read_rgb_uint8(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"{path}: cannot be read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def fivek_uint8_pairs(fivek_sample_dir: Path) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Every FiveK sample pair as ``(name, source, target)``, (H, W, 3) RGB uint8, by name.

    ``fivek_sample_dir`` comes from ``tests/conftest.py`` (skips when ``../shared`` is absent).
    """
    pairs = [
        (p.stem, _read_rgb_uint8(p), _read_rgb_uint8(fivek_sample_dir / "target" / p.name))
        for p in sorted((fivek_sample_dir / "source").glob("*.png"))
    ]
    if not pairs:
        pytest.skip(f"no PNG files in {fivek_sample_dir / 'source'}")
    return pairs


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
