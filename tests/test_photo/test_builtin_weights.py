"""The built-in FiveK weights: shipped as package data, checked by sha256, the default model."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

from lptn.inference.generator_weights import (
    BUILTIN_WEIGHTS_SHA256,
    builtin_weights_path,
    load_generator,
    verify_weights_file,
)
from lptn.platform.checkpoint_io import CheckpointError

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_weights_are_the_official_release(official_checkpoint: Path) -> None:
    path = builtin_weights_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BUILTIN_WEIGHTS_SHA256
    assert path.read_bytes() == official_checkpoint.read_bytes()
    builtin, official = load_generator().state_dict(), load_generator(official_checkpoint)
    assert builtin.keys() == official.state_dict().keys()
    for key, value in official.state_dict().items():
        assert torch.equal(builtin[key], value), key


def test_an_altered_weights_file_is_refused(tmp_path: Path) -> None:
    data = bytearray(builtin_weights_path().read_bytes())
    data[-100] ^= 0xFF
    bad = tmp_path / "net.pth"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"net.pth: the built-in weights are damaged"):
        verify_weights_file(bad, BUILTIN_WEIGHTS_SHA256)
    with pytest.raises(CheckpointError, match="missing"):
        verify_weights_file(tmp_path / "absent.pth", BUILTIN_WEIGHTS_SHA256)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")
def test_weights_are_declared_as_package_data() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lptn.weights"]
    weights = builtin_weights_path()
    assert any(weights.match(p) for p in patterns)
    assert (ROOT / "NOTICE").is_file() and "LPTN" in (ROOT / "NOTICE").read_text()
