"""Helpers for the data tests: generated image folders and the data-preparation scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, Tuple

import cv2
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts" / "data_preparation"


def _noise_image(rng: np.random.Generator, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    """Random ``HxWx3`` RGB image of ``dtype`` spanning the dtype's full range."""
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, size=(h, w, 3), dtype=np.int64).astype(dtype)


def _save_rgb(path: Path, img: np.ndarray) -> Path:
    """Write an RGB array with plain cv2 (independent of the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 and img.shape[2] == 3 else img
    assert cv2.imwrite(str(path), data), f"cv2 could not write {path}"
    return path


def _load_script(name: str) -> ModuleType:
    """Import ``scripts/data_preparation/<name>.py`` as a module."""
    module_name = f"_lptn_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SCRIPTS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_pair_dirs(tmp_path: Path) -> Callable[..., Tuple[Path, Path, Dict[str, np.ndarray]]]:
    """Factory: ``(lq_dir, gt_dir, {name: lq_array})`` with gt = 255 - lq pixelwise.

    The inverse relation lets tests check that crops/flips keep pairs aligned.
    """

    def make(names=("a", "b", "c", "d"), size=(40, 52), seed=0, sub="pairs"):
        rng = np.random.default_rng(seed)
        lq_dir, gt_dir = tmp_path / sub / "lq", tmp_path / sub / "gt"
        arrays = {}
        for name in names:
            lq = _noise_image(rng, *size)
            _save_rgb(lq_dir / f"{name}.png", lq)
            _save_rgb(gt_dir / f"{name}.png", 255 - lq)
            arrays[name] = lq
        return lq_dir, gt_dir, arrays

    return make


@pytest.fixture
def noise_image() -> Callable[..., np.ndarray]:
    """``noise_image(rng, h, w, dtype=np.uint8)``: random RGB image over the dtype's range."""
    return _noise_image


@pytest.fixture
def save_rgb() -> Callable[[Path, np.ndarray], Path]:
    """``save_rgb(path, img)``: write an RGB (or grey) array with plain cv2."""
    return _save_rgb


@pytest.fixture
def create_lmdb_script() -> ModuleType:
    """``scripts/data_preparation/create_lmdb.py`` imported as a module."""
    return _load_script("create_lmdb")


@pytest.fixture(scope="session")
def adobe_icc(shared_dir: Path) -> Path:
    path = shared_dir / "data" / "icc" / "AdobeRGB1998.icc"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the Adobe RGB profile of the shared data)")
    return path
