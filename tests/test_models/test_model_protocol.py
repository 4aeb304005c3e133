"""The models fit the interfaces the runners are typed against (lptn.models.model_protocol)."""

from __future__ import annotations

import inspect

import torch

from lptn.models import build_model
from lptn.models.lptn_model import LPTNModel
from lptn.models.lptn_test_model import LPTNTestModel
from lptn.models.model_protocol import EnhancementModel, TrainableModel
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))


def _methods(protocol: type) -> list:
    return [
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]


def _same_parameters(protocol: type, cls: type) -> None:
    for name in _methods(protocol):
        want = list(inspect.signature(getattr(protocol, name)).parameters)
        have = list(inspect.signature(getattr(cls, name)).parameters)
        assert have == want, f"{cls.__name__}.{name}{have} does not match {protocol.__name__}"


def test_test_model_enhances_as_the_runners_expect() -> None:
    opt = {
        "network_g": {"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 2},
        "path": {"pretrain_network_g": None},
        "model_type": "LPTNTestModel",
    }
    model = build_model(opt, CPU)
    assert isinstance(model, EnhancementModel) and not isinstance(model, TrainableModel)
    _same_parameters(EnhancementModel, LPTNTestModel)
    out = model.enhance(torch.rand(1, 3, 20, 24))
    assert out.shape == (1, 3, 20, 24) and out.dtype == torch.float32


def test_training_model_has_every_method_the_training_loop_calls(make_options) -> None:
    model = build_model(make_options(paired=True, gan=False), CPU)
    assert isinstance(model, TrainableModel)
    _same_parameters(EnhancementModel, LPTNModel)
    _same_parameters(TrainableModel, LPTNModel)
    assert set(_methods(TrainableModel)) >= {"feed_data", "optimize_parameters", "state_dict"}
