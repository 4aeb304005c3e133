"""Fixtures for the photo tests: a real FiveK crop, the Adobe RGB profile, the built-in model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from photo_samples import adobe_icc, fivek_crop

from lptn.photo import PhotoEnhancer


@pytest.fixture(scope="session")
def crop(fivek_sample_dir: Path) -> np.ndarray:
    """97x131 uint8 RGB crop of FiveK a4576 (read-only)."""
    img = fivek_crop(fivek_sample_dir)
    img.flags.writeable = False
    return img


@pytest.fixture(scope="session")
def adobe(shared_dir: Path) -> bytes:
    path = shared_dir / "data" / "icc" / "AdobeRGB1998.icc"
    if not path.is_file():
        pytest.skip(f"Adobe RGB test profile not found at {path}")
    return adobe_icc(shared_dir)


@pytest.fixture(scope="session")
def enhancer() -> PhotoEnhancer:
    """The built-in FiveK model on the CPU, exact path (the plain network)."""
    from lptn.inference.settings import InferenceSettings

    return PhotoEnhancer.from_weights(device="cpu", inference=InferenceSettings(path="exact"))
