"""LPTNModel speed options on the real released networks (tiny depth) and real photo crops:
``train.channels_last``, ``train.compile`` and fused Adam give the step of the default path.

Comparisons are on the losses and the gradients (what the layout or the compiler could get
wrong). Weights after an Adam step are compared only where the gradient is clearly non-zero:
Adam's first step is about ``lr * sign(grad)``, so a gradient that is pure rounding noise
(``trans_low.model.0.bias``, whose effect the InstanceNorm right after it removes) moves by a
random +-lr in either run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import torch

from lptn.archs.weight_loading import load_network_weights
from lptn.models import build_model
from lptn.models.lptn_model import LPTNModel
from lptn.platform.checkpoint_io import bare_module
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))
ADAM = {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]}


def _model(opt: Dict[str, Any], runtime: Runtime = CPU, seed: int = 0) -> LPTNModel:
    torch.manual_seed(seed)
    model = build_model(opt, runtime)
    assert isinstance(model, LPTNModel)
    return model


def _params(model: LPTNModel, name: str) -> Dict[str, torch.nn.Parameter]:
    return dict(bare_module(model.networks()[name]).named_parameters())


Losses = Dict[str, float]


def _step_both(
    a: LPTNModel, b: LPTNModel, batch: Dict[str, torch.Tensor], it: int
) -> Tuple[Losses, Losses]:
    losses = []
    for model in (a, b):
        torch.manual_seed(100 + it)  # the same penalty interpolation weights in both
        model.feed_data(batch)
        result = model.optimize_parameters(it)
        assert result.finite and not result.overflow, result.losses
        losses.append(result.losses)
    return losses[0], losses[1]


def assert_same_step(a: LPTNModel, b: LPTNModel, la: Losses, lb: Losses) -> None:
    """Losses, gradients and (where the gradient is not noise) updated weights agree."""
    assert la.keys() == lb.keys()
    for key in la:
        assert lb[key] == pytest.approx(la[key], rel=1e-5, abs=1e-6), key
    for name in a.networks():
        pa, pb = _params(a, name), _params(b, name)
        assert pa.keys() == pb.keys()
        scale = max(float(p.grad.abs().max()) for p in pa.values())
        for key in pa:
            ga, gb = pa[key].grad, pb[key].grad
            torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-5 * scale, msg=key)
            clear = ga.abs() > 1e-4 * scale
            torch.testing.assert_close(
                pb[key].detach()[clear], pa[key].detach()[clear], rtol=0, atol=1e-7, msg=key
            )


# ------------------------------------------------------------------------ channels_last
def test_channels_last_converts_networks_batches_and_optimiser_state(
    make_options, photo_batch
) -> None:
    model = _model(make_options(channels_last=True))
    nets = {name: bare_module(net) for name, net in model.networks().items()}
    for name, net in nets.items():
        four_d = [p for p in net.parameters() if p.dim() == 4]
        assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d), (
            name
        )
        # The optimiser steps the very tensors the network uses.
        opt_params = {id(p) for g in model.optimizers[name].param_groups for p in g["params"]}
        assert opt_params == {id(p) for p in net.parameters()}
    model.feed_data(photo_batch)
    for batch_key in ("lq", "ref"):
        assert getattr(model, batch_key).is_contiguous(memory_format=torch.channels_last)
    assert model.optimize_parameters(1).finite
    for name, optimizer in model.optimizers.items():
        for state in optimizer.state.values():
            if state["exp_avg"].dim() == 4:
                assert state["exp_avg"].is_contiguous(memory_format=torch.channels_last), name
    out = model.enhance(photo_batch["lq"])
    assert out.shape == photo_batch["lq"].shape and torch.isfinite(out).all()


@pytest.mark.parametrize("d_step_input", ["reuse", "recompute"])
def test_channels_last_step_matches_contiguous(
    make_options, photo_batch, d_step_input: str
) -> None:
    contiguous = _model(make_options(d_step_input=d_step_input))
    nhwc = _model(make_options(d_step_input=d_step_input, channels_last=True))
    assert_same_step(contiguous, nhwc, *_step_both(contiguous, nhwc, photo_batch, 1))
    torch.testing.assert_close(
        nhwc.enhance(photo_batch["lq"]), contiguous.enhance(photo_batch["lq"]), rtol=1e-4, atol=1e-4
    )


# ---------------------------------------------------------------------------- fused Adam
def _fused_options(make_options, fused: bool, gan: bool = True) -> Dict[str, Any]:
    flag = {"fused": True} if fused else {"foreach": True}
    # reuse: the critic judges G's output from before G's update, so its gradients do not
    # depend on the two optimisers' (rounding-level) different G updates.
    opt = make_options(paired=not gan, gan=gan, optim_g=dict(ADAM, **flag), d_step_input="reuse")
    if gan:
        opt["train"]["optim_d"] = dict(ADAM, **flag)
    return opt


def test_fused_adam_steps_equal_the_foreach_steps(make_options, photo_batch) -> None:
    """Three full steps (G + D + penalty). Before each, the fused model takes the foreach
    model's weights, so both optimisers see the same gradients and any difference is the
    optimiser's: moments, bias correction at steps 1-3, the update."""
    foreach = _model(_fused_options(make_options, False))
    fused = _model(_fused_options(make_options, True))
    assert fused.optimizers["net_g"].defaults["fused"] is True
    assert fused.optimizers["net_d"].defaults["fused"] is True
    for it in (1, 2, 3):
        for name in foreach.networks():
            bare_module(fused.networks()[name]).load_state_dict(
                bare_module(foreach.networks()[name]).state_dict()
            )
        _step_both(foreach, fused, photo_batch, it)
        for name in foreach.networks():
            pa, pb = _params(foreach, name), _params(fused, name)
            for key in pa:
                torch.testing.assert_close(
                    pb[key].grad, pa[key].grad, rtol=0, atol=0, msg=f"{name}.{key} at step {it}"
                )
                torch.testing.assert_close(
                    pb[key].detach(),
                    pa[key].detach(),
                    rtol=1e-6,
                    atol=1e-8,
                    msg=f"{name}.{key} at step {it}",
                )
            sa = foreach.optimizers[name].state_dict()["state"]
            sb = fused.optimizers[name].state_dict()["state"]
            for index in sa:
                for moment in ("exp_avg", "exp_avg_sq"):
                    torch.testing.assert_close(
                        sb[index][moment], sa[index][moment], rtol=1e-5, atol=1e-12
                    )
                assert float(sb[index]["step"]) == float(sa[index]["step"]) == it


def test_fused_adam_with_the_fp16_grad_scaler(make_options, photo_batch) -> None:
    """The fp16 scaler hands its scale to the fused kernel: overflows are skipped exactly as
    with the foreach step (same count, weights untouched) and the first real update agrees."""
    runtime = Runtime(device=torch.device("cpu"), precision="fp16")
    models = {
        fused: _model(_fused_options(make_options, fused, gan=False), runtime)
        for fused in (False, True)
    }
    overflows = {}
    for fused, model in models.items():
        model.feed_data({"lq": photo_batch["lq"], "gt": photo_batch["gt"]})
        g0 = {k: v.clone() for k, v in model.net_g.state_dict().items()}
        count = 0
        for it in range(1, 40):
            result = model.optimize_parameters(it)
            assert result.finite, result.losses
            if not result.overflow:
                break
            count += 1
            assert all(torch.equal(g0[k], v) for k, v in model.net_g.state_dict().items())
        assert not result.overflow
        overflows[fused] = count
    assert overflows[True] == overflows[False] > 0
    assert models[True].scalers["net_g"].get_scale() == models[False].scalers["net_g"].get_scale()
    pa, pb = _params(models[False], "net_g"), _params(models[True], "net_g")
    for key in pa:
        torch.testing.assert_close(
            pb[key].detach(), pa[key].detach(), rtol=1e-6, atol=1e-8, msg=key
        )


def test_fused_option_errors_name_the_key(make_options) -> None:
    with pytest.raises(ValueError, match=r"train\.optim_g\.fused"):
        _model(make_options(optim_g=dict(ADAM, fused="yes")))
    with pytest.raises(RuntimeError, match=r"train\.optim_d .*fused"):
        _model(make_options(optim_d=dict(ADAM, fused=True, foreach=True)))


# ------------------------------------------------------------------------------- compile
# Raised by torch's own inductor import (torch.utils.mkldnn), not by this project.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_generator_step_matches_eager_and_saves_plain_names(
    make_options, photo_batch, tmp_path: Path
) -> None:
    """One small compiled case (inductor on the CPU compiles for about 20-30 s here)."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # counts of earlier tests stay otherwise
    eager = _model(make_options(d_step_input="reuse"))
    compiled = _model(make_options(d_step_input="reuse", compile=True))
    assert compiled.speed.compile_mode == "default"
    assert bare_module(compiled.net_g) is not compiled.net_g  # compiled wrapper
    assert bare_module(compiled.net_d) is compiled.net_d  # the critic stays eager
    assert_same_step(eager, compiled, *_step_both(eager, compiled, photo_batch, 1))
    # The generator ran as one compiled graph, with no fallback to eager code.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert not torch._dynamo.utils.counters["graph_break"]

    # Checkpoints carry the original names, and load strictly into an uncompiled network.
    paths = compiled.save_networks(tmp_path, 1)
    saved = torch.load(paths[0], weights_only=True)["params"]
    assert set(saved) == set(eager.net_g.state_dict())
    assert not any("_orig_mod" in key for key in saved)
    fresh = _model(make_options(), seed=7)
    load_network_weights(fresh.net_g, paths[0], strict=True, param_key="params")
    assert all(torch.equal(v, saved[k]) for k, v in fresh.net_g.state_dict().items())
    compiled.load_networks(tmp_path, 1)  # resume path: into the compiled model

    # Validation runs the plain module: other image sizes compile nothing.
    frames_before = dict(torch._dynamo.utils.counters["frames"])
    for size in (32, 48):
        lq = torch.nn.functional.interpolate(
            photo_batch["lq"], size=(size, size), mode="bilinear", align_corners=False
        )
        with torch.no_grad():
            expected = bare_module(compiled.net_g)(lq)
        torch.testing.assert_close(compiled.enhance(lq), expected, rtol=0, atol=0)
    assert dict(torch._dynamo.utils.counters["frames"]) == frames_before


def test_compile_option_errors(make_options) -> None:
    with pytest.raises(ValueError, match="train.compile"):
        _model(make_options(compile="fastest"))
    apex = make_options(compile=True, amp={"enabled": True, "backend": "apex"})
    with pytest.raises(ValueError, match="train.compile.*apex"):
        _model(apex)
    with pytest.raises(ValueError, match="train.channels_last"):
        _model(make_options(channels_last="yes"))
