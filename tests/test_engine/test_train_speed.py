"""``train.channels_last`` / ``train.compile`` parsing and helpers, and the fused-optimiser /
apex rule; the numerical checks on a real training step are in
tests/test_models/test_lptn_model_speed.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_test_utils import assert_train_py_fails_before_data

from lptn.archs.lptn_arch import LPTN
from lptn.platform.amp_backend import (
    AmpConfig,
    check_training_requirements,
    prepare_mixed_precision,
)
from lptn.platform.runtime import build_training_runtime
from lptn.platform.train_speed import (
    COMPILE_MODES,
    TrainSpeed,
    check_compile_support,
    train_speed_options,
)


def _speed(**train) -> TrainSpeed:
    return train_speed_options({"train": train})


def test_defaults_and_accepted_values() -> None:
    assert _speed() == TrainSpeed(channels_last=False, compile_mode=None)
    assert train_speed_options({}) == TrainSpeed()
    assert _speed(channels_last=True, compile=True) == TrainSpeed(True, "default")
    assert _speed(compile=False).compile_mode is None
    with pytest.raises(ValueError, match="train.compile"):
        _speed(compile=None)  # as in a YAML file: false turns it off, ~ is not a value
    for mode in COMPILE_MODES:
        assert _speed(compile=mode).compile_mode == mode
    assert "reduce-overhead" in COMPILE_MODES and "max-autotune" in COMPILE_MODES


@pytest.mark.parametrize(
    "train,key",
    [
        ({"channels_last": "yes"}, "train.channels_last"),
        ({"channels_last": 1}, "train.channels_last"),
        ({"compile": "fastest"}, "train.compile"),
        ({"compile": 1}, "train.compile"),
    ],
)
def test_bad_values_name_the_key(train, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        _speed(**train)


def test_compile_with_apex_is_refused_but_native_amp_is_fine() -> None:
    with pytest.raises(ValueError, match="train.compile.*apex"):
        _speed(compile=True, amp={"enabled": True, "backend": "apex"})
    assert _speed(compile=True, amp={"enabled": True, "dtype": "bf16"}).compile_mode == "default"
    # apex that is switched off does not count
    assert _speed(compile=True, amp={"enabled": False, "backend": "apex"}).compile_mode


def test_batches_and_networks_follow_the_memory_format() -> None:
    x = torch.rand(2, 3, 9, 11)
    nhwc, plain = TrainSpeed(channels_last=True), TrainSpeed()
    moved = nhwc.batch_to(x, torch.device("cpu"))
    assert moved.is_contiguous(memory_format=torch.channels_last) and torch.equal(moved, x)
    assert plain.batch_to(x, torch.device("cpu")).is_contiguous()
    flat = torch.rand(2, 3)  # not an image batch: left as it is
    assert nhwc.batch_to(flat, torch.device("cpu")).is_contiguous()

    net = LPTN(nrb_low=1, nrb_high=1, num_high=2)
    before = {name: p for name, p in net.named_parameters()}
    assert nhwc.prepare_network(net) is net
    for name, p in net.named_parameters():
        assert p is before[name]  # same Parameter objects: optimisers stay valid
        if p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last), name
    assert plain.compile(net) is net
    plain.begin_step()
    check_compile_support(plain, torch.device("cpu"))
    check_compile_support(TrainSpeed(compile_mode="default"), torch.device("cpu"))
    assert (
        TrainSpeed(True, "max-autotune").describe()
        == "channels_last, compiled generator (max-autotune)"
    )


def test_fused_torch_optimiser_with_apex_names_the_key() -> None:
    apex = {"enabled": True, "backend": "apex", "opt_level": "O2"}
    with pytest.raises(ValueError, match=r"train\.optim_d\.fused.*apex"):
        check_training_requirements(
            {"train": {"amp": apex, "optim_d": {"type": "Adam", "lr": 1, "fused": True}}}
        )
    net = torch.nn.Conv2d(3, 3, 3)
    fused = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    with pytest.raises(ValueError, match=r"train\.optim_g\.fused"):
        prepare_mixed_precision(
            AmpConfig(precision="fp16", backend="apex"),
            torch.device("cpu"),
            {"net_g": net},
            {"net_g": fused},
        )
    # The native backend keeps the fused optimiser as it is.
    _, optimizers, scalers = prepare_mixed_precision(
        AmpConfig(precision="fp16"), torch.device("cpu"), {"net_g": net}, {"net_g": fused}
    )
    assert optimizers["net_g"] is fused and scalers["net_g"].is_enabled()


@pytest.mark.parametrize(
    "override,expected",
    [
        (["train.compile=fastest"], "train.compile"),
        (["train.channels_last=maybe"], "train.channels_last"),
    ],
)
def test_train_py_rejects_bad_speed_options_before_reading_data(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    override,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    option_file = assert_train_py_fails_before_data(tmp_path, capsys, override, expected)
    from lptn.platform.options import parse_options

    with pytest.raises(ValueError, match=expected):
        build_training_runtime(parse_options(option_file, override, is_train=True, root=tmp_path))
