"""The runtime's float32 contract on CUDA (``tf32``) and its option checks."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Tuple

import pytest
import torch

from lptn.platform.options import OptionError, parse_options
from lptn.platform.runtime import DeviceError, build_runtime, configure_tf32, tf32_option


@pytest.fixture
def tf32_flags() -> Iterator[None]:
    """Restore PyTorch's global TF32 switches after the test."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _flags() -> Tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_tf32_option_defaults_to_false_and_names_bad_values() -> None:
    assert tf32_option({}) is False
    assert tf32_option({"tf32": True}) is True
    with pytest.raises(DeviceError, match="tf32 must be true or false, got 'yes'"):
        tf32_option({"tf32": "yes"})


def test_cuda_float32_is_ieee_unless_tf32_is_asked_for(tf32_flags) -> None:
    # The switches are global torch settings: the rule can be checked without a GPU.
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for cuDNN convolutions
    configure_tf32(torch.device("cuda", 0), allowed=False)
    assert _flags() == (False, False)
    configure_tf32(torch.device("cuda", 0), allowed=True)
    assert _flags() == (True, True)
    configure_tf32(torch.device("cpu"), allowed=False)  # other devices: untouched
    assert _flags() == (True, True)


def test_runtime_records_tf32(tf32_flags) -> None:
    before = _flags()
    runtime = build_runtime({"device": "cpu", "tf32": True})
    assert runtime.tf32 is True and _flags() == before
    assert build_runtime({"device": "cpu"}).tf32 is False


def test_options_file_rejects_a_non_boolean_tf32(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(
        "name: t\nmodel_type: LPTNTestModel\ntf32: sometimes\nnetwork_g: {type: LPTN}\npath: {}\n",
        encoding="utf-8",
    )
    with pytest.raises(OptionError, match="tf32"):
        parse_options(path, is_train=False, root=tmp_path)
