"""Ascend NPU and apex options: parsing, and the errors when torch_npu / apex are missing
(neither is installed here), raised before any data is read.

The last test drives the apex adapter against a small stand-in package written to tmp_path
that has apex's documented call signatures (``amp.initialize``, ``amp.scale_loss``,
``amp.state_dict``, ``apex.optimizers.NpuFusedAdam``): it checks how this project calls apex,
not apex itself (which only runs on CUDA GPUs / Ascend NPUs).
"""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from train_test_utils import assert_train_py_fails_before_data

from lptn.engine.cli import train_main
from lptn.models.optimizers import OPTIMIZER_REGISTRY, build_optimizer
from lptn.platform import device_backend
from lptn.platform.amp_backend import (
    AmpConfig,
    AmpUnavailable,
    ApexScaler,
    amp_config,
    check_training_requirements,
    prepare_mixed_precision,
)
from lptn.platform.runtime import DeviceError, build_training_runtime, select_device

pytestmark = pytest.mark.skipif(
    device_backend.import_npu_support(),
    reason="torch_npu is installed: the missing-package errors cannot happen",
)


def _amp(**amp) -> AmpConfig:
    return amp_config({"train": {"amp": amp}})


def test_amp_options() -> None:
    assert _amp(enabled=False, backend="apex") == AmpConfig()
    assert _amp(enabled=True) == AmpConfig(precision="bf16")
    assert _amp(enabled=True, backend="apex") == AmpConfig(precision="fp16", backend="apex")
    config = _amp(enabled=True, backend="apex", opt_level="O2", loss_scale=128, combine_grad=True)
    assert (config.opt_level, config.loss_scale, config.combine_grad) == ("O2", 128.0, True)
    assert config.uses_apex
    for bad, key in [
        (dict(opt_level="O4"), "train.amp.opt_level"),
        (dict(loss_scale=-1), "train.amp.loss_scale"),
        (dict(loss_scale="auto"), "train.amp.loss_scale"),
        (dict(combine_grad="yes"), "train.amp.combine_grad"),
        (dict(dtype="bf16"), "apex AMP trains in fp16 only"),
    ]:
        with pytest.raises(ValueError, match=key):
            _amp(enabled=True, backend="apex", **bad)
    with pytest.raises(ValueError, match="train.amp.backend must be one of native, apex"):
        _amp(enabled=True, backend="deepspeed")
    with pytest.raises(ValueError, match="train.amp.opt_levl: unknown key"):
        _amp(enabled=True, opt_levl="O2")


def test_apex_keys_with_the_native_backend_warn(lptn_log) -> None:
    assert _amp(enabled=True, dtype="fp16", opt_level="O2") == AmpConfig(precision="fp16")
    assert any(
        "only apply to backend: apex" in r.getMessage() and r.levelno == logging.WARNING
        for r in lptn_log.records
    )


def test_npu_device_without_torch_npu_says_what_to_install() -> None:
    with pytest.raises(DeviceError) as info:
        select_device("npu", "auto")
    message = str(info.value)
    assert "torch_npu" in message and "CANN" in message
    # auto never picks an NPU that is not there
    assert select_device("auto", num_gpu="auto").type in ("cpu", "cuda", "mps")
    assert device_backend.default_dist_backend("npu") == "hccl"
    assert device_backend.default_dist_backend("cuda") == "nccl"
    assert device_backend.default_dist_backend("cpu") == "gloo"


def test_missing_apex_and_fused_optimisers_are_named() -> None:
    assert "NpuFusedAdam" in OPTIMIZER_REGISTRY and "FusedAdam" in OPTIMIZER_REGISTRY
    with pytest.raises(AmpUnavailable, match="train.amp.backend: apex needs apex.amp.*install"):
        check_training_requirements({"train": {"amp": {"enabled": True, "backend": "apex"}}})
    with pytest.raises(
        AmpUnavailable, match="train.optim_d.type: NpuFusedAdam needs apex.optimizers"
    ):
        check_training_requirements({"train": {"optim_d": {"type": "NpuFusedAdam", "lr": 1}}})
    with pytest.raises(AmpUnavailable, match="apex"):
        build_optimizer(torch.nn.Linear(2, 2).parameters(), {"type": "FusedAdam", "lr": 1e-3})
    # A type that is neither torch's nor apex's is still an unknown type.
    with pytest.raises(KeyError, match="unknown optimizer type 'Adamm'"):
        build_optimizer(torch.nn.Linear(2, 2).parameters(), {"type": "Adamm", "lr": 1e-3})


@pytest.mark.parametrize(
    "override,expected",
    [
        (["device=npu"], "torch_npu"),
        (
            ["train.amp.enabled=true", "train.amp.backend=apex", "train.amp.opt_level=O2"],
            "train.amp.backend: apex needs apex.amp",
        ),
        (["train.optim_g.type=NpuFusedAdam"], "train.optim_g.type: NpuFusedAdam needs apex"),
    ],
)
def test_train_py_fails_before_reading_data(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    override,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    option_file = assert_train_py_fails_before_data(tmp_path, capsys, override, expected)
    # The same options through the API: build_training_runtime raises the same.
    from lptn.platform.options import parse_options

    with pytest.raises(DeviceError, match=expected.split(":")[0]):
        build_training_runtime(parse_options(option_file, override, is_train=True, root=tmp_path))


def test_the_shipped_npu_options_name_both_missing_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # its datasets/FiveK/... paths do not exist here
    option_file = (
        Path(__file__).resolve().parents[2] / "options" / "train" / "LPTN" / "train_FiveK_npu.yml"
    )
    assert train_main(["-opt", str(option_file)]) == 2
    err = capsys.readouterr().err
    assert "train.amp.backend: apex needs apex.amp" in err and "device: npu" in err
    assert "torch_npu" in err and "FiveK_train" not in err


_STAND_IN_AMP = """
import contextlib
calls = []

class _LossScaler:
    def __init__(self, scale):
        self._loss_scale = scale
        self._unskipped = 0
    def loss_scale(self):
        return self._loss_scale

class _State:
    loss_scalers = []

_amp_state = _State()

def initialize(models, optimizers=None, enabled=True, opt_level="O1", loss_scale=None,
               num_losses=1, verbosity=1, combine_grad=None):
    calls.append(("initialize", opt_level, loss_scale, num_losses, combine_grad))
    scale = 2.0 ** 16 if loss_scale in (None, "dynamic") else float(loss_scale)
    _amp_state.loss_scalers = [_LossScaler(scale) for _ in range(num_losses)]
    return models, optimizers

@contextlib.contextmanager
def scale_loss(loss, optimizers, loss_id=0):
    scale = _amp_state.loss_scalers[loss_id].loss_scale()
    calls.append(("scale_loss", loss_id, scale))
    yield loss.float() * scale
    for group in optimizers.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.div_(scale)

def state_dict():
    return {f"loss_scaler{i}": {"loss_scale": s._loss_scale, "unskipped": s._unskipped}
            for i, s in enumerate(_amp_state.loss_scalers)}

def load_state_dict(state):
    for i, key in enumerate(state):
        _amp_state.loss_scalers[i]._loss_scale = state[key]["loss_scale"]
"""

_STAND_IN_OPTIMIZERS = """
import torch

class NpuFusedAdam(torch.optim.Adam):
    pass
"""


@pytest.fixture
def stand_in_apex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "site" / "apex"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "amp.py").write_text(textwrap.dedent(_STAND_IN_AMP))
    (package / "optimizers.py").write_text(textwrap.dedent(_STAND_IN_OPTIMIZERS))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in ("apex", "apex.amp", "apex.optimizers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield importlib.import_module("apex.amp")
    for name in ("apex", "apex.amp", "apex.optimizers"):
        sys.modules.pop(name, None)


def test_apex_adapter_calls(stand_in_apex) -> None:
    amp = stand_in_apex
    opt = {
        "train": {
            "amp": {
                "enabled": True,
                "backend": "apex",
                "opt_level": "O2",
                "loss_scale": 128,
                "combine_grad": True,
            },
            "optim_g": {"type": "NpuFusedAdam", "lr": 1e-3},
        }
    }
    config = check_training_requirements(opt)
    optimizer = build_optimizer(torch.nn.Linear(3, 1).parameters(), opt["train"]["optim_g"])
    assert type(optimizer).__name__ == "NpuFusedAdam"

    nets = {"net_g": torch.nn.Linear(3, 1), "net_d": torch.nn.Linear(3, 1)}
    optimizers = {k: torch.optim.SGD(v.parameters(), lr=0.5) for k, v in nets.items()}
    with pytest.raises(AmpUnavailable, match="apex runs on CUDA GPUs or Ascend NPUs"):
        prepare_mixed_precision(config, torch.device("cpu"), nets, optimizers)
    # The device type is all the adapter looks at; the stand-in computes on the CPU.
    _, _, scalers = prepare_mixed_precision(config, torch.device("cuda"), nets, optimizers)
    assert amp.calls[-1] == ("initialize", "O2", 128.0, 2, True)
    assert isinstance(scalers["net_d"], ApexScaler) and scalers["net_d"].loss_id == 1

    x = torch.ones(4, 3)
    loss = nets["net_d"](x).mean()
    scalers["net_d"].backward(loss)
    assert amp.calls[-1] == ("scale_loss", 1, 128.0)
    expected = torch.autograd.grad(nets["net_d"](x).mean(), nets["net_d"].weight)[0]
    torch.testing.assert_close(nets["net_d"].weight.grad, expected)
    before = nets["net_d"].weight.detach().clone()
    assert scalers["net_d"].step_optimizer(optimizers["net_d"]) is False
    assert not torch.equal(before, nets["net_d"].weight)
    assert scalers["net_d"].gp_scale(torch.device("cpu")) == 128.0

    # The amp state (loss scales) is what the training state saves and resume restores.
    saved = scalers["net_g"].state_dict()
    amp._amp_state.loss_scalers[0]._loss_scale = 1.0
    scalers["net_g"].load_state_dict(saved)
    assert amp._amp_state.loss_scalers[0].loss_scale() == 128.0
