"""LPTNModel: the training step of the released recipe and its variants, on tiny networks."""

from __future__ import annotations

import copy
import io
from typing import Any, Dict

import pytest
import torch

from lptn.losses.gan_loss import GAN_TYPES
from lptn.models import build_model
from lptn.models.lptn_model import LPTNModel
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))


def state_of(net: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def same_weights(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _model(opt: Dict[str, Any], runtime: Runtime = CPU, seed: int = 0) -> LPTNModel:
    torch.manual_seed(seed)
    model = build_model(opt, runtime)
    assert isinstance(model, LPTNModel)
    return model


def test_pixel_step_lowers_the_pixel_loss(make_options, batch) -> None:
    model = _model(make_options(paired=True, gan=False))
    assert model.net_d is None and model.pixel_target == "gt"
    model.feed_data({"lq": batch["lq"], "gt": batch["gt"]})

    def loss() -> float:
        with torch.no_grad():
            return float(model.cri_pix(model.net_g(batch["lq"]), batch["gt"]))

    before = loss()
    result = model.optimize_parameters(1)
    assert result.finite and set(result.losses) == {"l_g_pix"}
    assert result.losses["l_g_pix"] == pytest.approx(before, rel=1e-5)
    for it in range(2, 4):
        model.optimize_parameters(it)
    assert loss() < before


def test_unpaired_recipe_losses_match_the_formulas(make_options, batch) -> None:
    """l_g = 1000 MSE(out, lq) - mean D(out); l_d = -mean D(ref) + mean D(fake) + 100 GP."""
    model = _model(make_options())
    assert model.pixel_target == "input"
    g0, d0 = state_of(model.net_g), state_of(model.net_d)
    critic_before = copy.deepcopy(model.net_d)
    with torch.no_grad():
        out = model.net_g(batch["lq"])
        pix = 1000 * ((out - batch["lq"]) ** 2).mean()
        gan = -model.net_d(out).mean()
        real_score = model.net_d(batch["ref"]).mean()
    model.feed_data(batch)
    result = model.optimize_parameters(1)
    assert result.finite
    assert result.losses["l_g_pix"] == pytest.approx(float(pix), rel=1e-5)
    assert result.losses["l_g_gan"] == pytest.approx(float(gan), rel=1e-4, abs=1e-6)
    # The critic saw the updated generator's output (recompute, the default): its real score
    # comes from the unchanged critic, its fake score from G after the step.
    assert result.losses["l_d_real"] == pytest.approx(-float(real_score), rel=1e-4, abs=1e-6)
    with torch.no_grad():
        fake_score = critic_before(model.net_g(batch["lq"])).mean()
    assert result.losses["l_d_fake"] == pytest.approx(float(fake_score), rel=1e-4, abs=1e-6)
    assert result.losses["l_d_gp"] >= 0
    assert not same_weights(g0, state_of(model.net_g))
    assert not same_weights(d0, state_of(model.net_d))


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_every_gan_type_runs_a_full_unpaired_step(make_options, batch, gan_type: str) -> None:
    opt = make_options(
        gan_opt={
            "type": "GANLoss",
            "gan_type": gan_type,
            "loss_weight": 1,
            "real_label_val": 1.0,
            "fake_label_val": 0.0,
        }
    )
    model = _model(opt)
    g0, d0 = state_of(model.net_g), state_of(model.net_d)
    model.feed_data(batch)
    result = model.optimize_parameters(1)
    assert result.finite, result.losses
    assert {"l_g_pix", "l_g_gan", "l_d_real", "l_d_fake", "l_d_gp"} <= set(result.losses)
    assert not same_weights(g0, state_of(model.net_g))
    assert not same_weights(d0, state_of(model.net_d))


def test_d_step_input_reuse_and_recompute(make_options, batch) -> None:
    """Both variants update G identically; the critic judges G's output from before (reuse)
    or after (recompute) the generator update, so the critics differ."""
    models = {mode: _model(make_options(d_step_input=mode)) for mode in ("recompute", "reuse")}
    g_before = models["reuse"].net_g
    with torch.no_grad():
        out_before = g_before(batch["lq"]).clone()
    for _mode, model in models.items():
        torch.manual_seed(1)  # same penalty interpolation weights in both
        model.feed_data(batch)
        assert model.optimize_parameters(1).finite
    recompute, reuse = models["recompute"], models["reuse"]
    assert same_weights(state_of(recompute.net_g), state_of(reuse.net_g))
    with torch.no_grad():
        out_after = recompute.net_g(batch["lq"])
    assert torch.equal(reuse.d_fake, out_before)
    assert torch.equal(recompute.d_fake, out_after)
    assert not torch.equal(out_before, out_after)
    assert not same_weights(state_of(recompute.net_d), state_of(reuse.net_d))


def test_net_d_init_iters_and_net_d_iters(make_options, batch) -> None:
    model = _model(make_options(net_d_init_iters=2))
    model.feed_data(batch)
    g0 = state_of(model.net_g)
    for it in (1, 2):
        d_before = state_of(model.net_d)
        result = model.optimize_parameters(it)
        assert "l_g_pix" not in result.losses
        assert same_weights(g0, state_of(model.net_g))  # critic-only warm-up
        assert not same_weights(d_before, state_of(model.net_d))
    assert "l_g_pix" in model.optimize_parameters(3).losses
    assert not same_weights(g0, state_of(model.net_g))

    every_other = _model(make_options(net_d_iters=2))
    assert [every_other.generator_updates_at(it) for it in range(1, 6)] == [
        False,
        True,
        False,
        True,
        False,
    ]


def test_non_finite_input_skips_both_updates(make_options, batch) -> None:
    model = _model(make_options())
    model.feed_data(batch)
    assert model.optimize_parameters(1).finite  # optimiser state exists
    g0, d0 = state_of(model.net_g), state_of(model.net_d)
    opt_state = {
        k: {n: s["exp_avg"].clone() for n, s in enumerate(o.state.values())}
        for k, o in model.optimizers.items()
    }
    bad = dict(batch)
    bad["lq"] = batch["lq"].clone()
    bad["lq"][0, 0, 5, 5] = float("nan")
    model.feed_data(bad)
    result = model.optimize_parameters(2)
    assert not result.finite
    assert set(result.skipped) == {"net_g", "net_d"}
    assert "l_g_pix" in result.nonfinite_terms()
    assert same_weights(g0, state_of(model.net_g))
    assert same_weights(d0, state_of(model.net_d))
    for name, optimizer in model.optimizers.items():
        assert all(p.grad is None for g in optimizer.param_groups for p in g["params"])
        for n, s in enumerate(optimizer.state.values()):
            assert torch.equal(s["exp_avg"], opt_state[name][n])


def test_bf16_autocast_training_step_on_cpu(make_options, batch) -> None:
    runtime = Runtime(device=torch.device("cpu"), precision="bf16")
    model = _model(make_options(), runtime)
    seen = []
    model.net_g.trans_low.model[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    g0 = state_of(model.net_g)
    model.feed_data(batch)
    result = model.optimize_parameters(1)
    assert result.finite, result.losses
    assert seen and seen[0] == torch.bfloat16  # the convolutions ran in bf16
    assert not any(s.is_enabled() for s in model.scalers.values())  # no scaler for bf16
    assert not same_weights(g0, state_of(model.net_g))
    assert all(p.dtype == torch.float32 for p in model.net_g.parameters())


def test_fp16_loss_scaler_skips_overflows_then_trains(make_options, batch) -> None:
    """fp16 on the CPU, pixel recipe (the critic's fp16 double backward needs a GPU: CPU
    instance-norm kernels in half precision give NaN gradients). The scaler starts at 2**16,
    overflows on the 1000x pixel loss, halves its scale, and the generator then trains."""
    runtime = Runtime(device=torch.device("cpu"), precision="fp16")
    model = _model(make_options(paired=True, gan=False), runtime)
    scaler = model.scalers["net_g"]
    assert scaler.is_enabled()
    model.feed_data({"lq": batch["lq"], "gt": batch["gt"]})
    g0 = state_of(model.net_g)
    overflows = 0
    for it in range(1, 40):
        result = model.optimize_parameters(it)
        assert result.finite, result.losses  # an overflow is not a bad loss
        if not result.overflow:
            break
        overflows += 1
        assert same_weights(g0, state_of(model.net_g))  # skipped by the scaler
    assert overflows > 0 and not result.overflow
    assert scaler.get_scale() == 2.0**16 / 2**overflows
    assert not same_weights(g0, state_of(model.net_g))
    assert model.state_dict()["scalers"]["net_g"]["scale"] == scaler.get_scale()


def test_state_dict_round_trip_continues_identically(make_options, batch) -> None:
    """Optimiser + schedule state through torch.save / load(weights_only=True)."""
    opt = make_options()
    a = _model(opt)
    a.feed_data(batch)
    for it in (1, 2):
        a.update_learning_rate(it)
        a.optimize_parameters(it)
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "g": a.net_g.state_dict(), "d": a.net_d.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    b = _model(opt, seed=123)
    b.net_g.load_state_dict(saved["g"])
    b.net_d.load_state_dict(saved["d"])
    b.load_state_dict(saved["model"])
    b.feed_data(batch)
    for model in (a, b):
        torch.manual_seed(5)
        model.update_learning_rate(3)
        model.optimize_parameters(3)
    assert same_weights(state_of(a.net_g), state_of(b.net_g))
    assert same_weights(state_of(a.net_d), state_of(b.net_d))


def test_learning_rates_follow_the_schedule(make_options) -> None:
    model = _model(make_options(scheduler={"type": "MultiStepLR", "milestones": [2], "gamma": 0.5}))
    model.update_learning_rate(1, warmup_iter=2)
    assert model.get_current_learning_rate() == pytest.approx({"lr_g": 5e-5, "lr_d": 5e-5})
    model.update_learning_rate(3)
    assert model.get_current_learning_rate() == pytest.approx({"lr_g": 5e-5, "lr_d": 5e-5})
    model.update_learning_rate(2)
    assert model.get_current_learning_rate() == pytest.approx({"lr_g": 1e-4, "lr_d": 1e-4})


def test_option_errors_are_clear(make_options, batch) -> None:
    model = _model(make_options(pixel_target="gt"))
    model.feed_data({"lq": batch["lq"], "ref": batch["ref"]})
    with pytest.raises(KeyError, match="pixel_target"):
        model.optimize_parameters(1)
    with pytest.raises(ValueError, match="train.d_step_input"):
        _model(make_options(d_step_input="sometimes"))
    with pytest.raises(ValueError, match="train.pixel_target"):
        _model(make_options(pixel_target="ref"))
    no_d = make_options()
    del no_d["network_d"]
    with pytest.raises(ValueError, match="network_d"):
        _model(no_d)
    with pytest.raises(ValueError, match="net_d_iters"):
        _model(make_options(net_d_iters=0))
    missing_optim = make_options()
    del missing_optim["train"]["optim_d"]
    with pytest.raises(ValueError, match="train.optim_d"):
        _model(missing_optim)


def test_both_networks_start_from_the_path_weights(
    make_options, official_checkpoint, tmp_path
) -> None:
    """``path.pretrain_network_g`` / ``_d`` load through build_network, as the test model does."""
    from lptn.archs import build_network
    from lptn.platform.checkpoint_io import save_network

    torch.manual_seed(7)
    critic = build_network({"type": "Discriminator"}, "network_d")
    save_network(critic, tmp_path / "net_d.pth")
    opt = make_options()
    opt["network_g"] = {"type": "LPTN", "nrb_low": 5, "nrb_high": 3, "num_high": 3}
    opt["path"] = {
        "pretrain_network_g": str(official_checkpoint),
        "pretrain_network_d": str(tmp_path / "net_d.pth"),
    }
    model = _model(opt, seed=0)
    official = torch.load(official_checkpoint, map_location="cpu", weights_only=True)
    generator = state_of(model.net_g)
    assert generator and all(torch.equal(v, official[k]) for k, v in generator.items())
    assert same_weights(state_of(model.net_d), state_of(critic))
    assert model.net_g.training and model.net_d.training
