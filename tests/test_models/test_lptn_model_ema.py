"""train.ema_decay: the moving average of the generator, its files and what validation runs."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import torch

from lptn.inference.generator_weights import load_generator
from lptn.models import build_model
from lptn.models.lptn_model import LPTNModel
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))
DECAY = 0.9


def params_of(net: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def _model(opt) -> LPTNModel:
    torch.manual_seed(0)
    model = build_model(opt, CPU)
    assert isinstance(model, LPTNModel)
    return model


def test_ema_follows_the_recurrence_and_validation_runs_it(make_options, photo_batch) -> None:
    model = _model(make_options(paired=True, gan=False, ema_decay=DECAY))
    assert model.net_g_ema is not None and "EMA" in model.describe()
    # By hand: ema_0 = the initial weights, ema_t = d * ema_{t-1} + (1 - d) * w_t.
    expected = params_of(model.net_g)
    model.feed_data({"lq": photo_batch["lq"], "gt": photo_batch["gt"]})
    for it in range(1, 6):
        model.optimize_parameters(it)
        for name, weight in params_of(model.net_g).items():
            expected[name] = DECAY * expected[name] + (1 - DECAY) * weight
    averaged = params_of(model.net_g_ema.module)
    live = params_of(model.net_g)
    assert averaged.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(averaged[name], expected[name], rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(averaged[k], live[k]) for k in live)

    with torch.no_grad():
        from_ema = model.net_g_ema.module(photo_batch["lq"])
        from_live = model.net_g(photo_batch["lq"])
    out = model.enhance(photo_batch["lq"])
    assert torch.equal(out, from_ema) and not torch.allclose(out, from_live)


def test_net_g_files_hold_params_and_params_ema(make_options, photo_batch, tmp_path: Path) -> None:
    model = _model(make_options(paired=True, gan=True, ema_decay=DECAY))
    model.feed_data(photo_batch)
    for it in range(1, 4):
        model.optimize_parameters(it)
    g_path, d_path = model.save_networks(tmp_path, 3)
    saved = torch.load(g_path, map_location="cpu", weights_only=True)
    assert set(saved) == {"params", "params_ema", "arch"}
    assert set(torch.load(d_path, map_location="cpu", weights_only=True)) == {"params", "arch"}
    # The inference loader picks either entry; params stays the default.
    ema_net = load_generator(g_path, param_key="params_ema")
    live_net = load_generator(g_path)
    for name, value in model.net_g_ema.module.state_dict().items():
        assert torch.equal(ema_net.state_dict()[name], value)
    for name, value in model.net_g.state_dict().items():
        assert torch.equal(live_net.state_dict()[name], value)

    # A second model takes both back (resume); the update count comes with the state.
    other = _model(make_options(paired=True, gan=True, ema_decay=DECAY))
    other.load_networks(tmp_path, 3)
    other.load_state_dict(model.state_dict())
    assert int(other.net_g_ema.n_averaged) == int(model.net_g_ema.n_averaged) == 4
    for name, value in model.net_g_ema.module.state_dict().items():
        assert torch.equal(other.net_g_ema.module.state_dict()[name], value)


def test_ema_off_and_bad_values(make_options, tmp_path: Path) -> None:
    for off in (None, 0, 0.0):
        opt = make_options(gan=False, ema_decay=off)
        model = _model(opt)
        assert model.net_g_ema is None
        (path,) = model.save_networks(tmp_path, "x")
        assert set(torch.load(path, map_location="cpu", weights_only=True)) == {"params", "arch"}
        assert "ema" not in model.state_dict()
    for bad in (1, 1.5, -0.1, "0.9", True):
        with pytest.raises(ValueError, match="train.ema_decay"):
            _model(make_options(gan=False, ema_decay=bad))
