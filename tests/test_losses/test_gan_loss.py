"""GANLoss: values per type against hand formulas, gradient signs, the real critic, errors."""

from __future__ import annotations

import math

import pytest
import torch

from lptn.archs import build_network
from lptn.losses import build_loss
from lptn.losses.gan_loss import GAN_TYPES, GANLoss

SCORES = [-1.5, 0.5, 2.0]


def _x(values=SCORES) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1, 1)


def _mean(values) -> float:
    return sum(values) / len(values)


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def _bce(v: float, label: float) -> float:
    p = 1 / (1 + math.exp(-v))
    return -(label * math.log(p) + (1 - label) * math.log(1 - p))


def _expected(gan_type: str, real: bool, disc: bool, r: float = 1.0, f: float = 0.0) -> float:
    xs = SCORES
    if gan_type in ("standard", "wgan"):
        return -_mean(xs) if real else _mean(xs)
    if gan_type == "vanilla":
        return _mean([_bce(v, r if real else f) for v in xs])
    if gan_type == "lsgan":
        return _mean([(v - (r if real else f)) ** 2 for v in xs])
    if gan_type == "hinge":
        if not disc:
            return -_mean(xs) if real else _mean(xs)
        return _mean([max(0.0, 1 - v) if real else max(0.0, 1 + v) for v in xs])
    if gan_type == "wgan_softplus":
        return _mean([_softplus(-v) if real else _softplus(v) for v in xs])
    raise AssertionError(gan_type)


@pytest.mark.parametrize("gan_type", GAN_TYPES)
@pytest.mark.parametrize("real", [True, False])
@pytest.mark.parametrize("disc", [True, False])
def test_values_match_hand_formulas(gan_type, real, disc):
    loss = GANLoss(gan_type)(_x(), target_is_real=real, is_disc=disc)
    assert loss.item() == pytest.approx(_expected(gan_type, real, disc), rel=1e-12)


@pytest.mark.parametrize("gan_type", ["vanilla", "lsgan"])
def test_label_values_are_used(gan_type):
    loss = GANLoss(gan_type, real_label_val=0.9, fake_label_val=0.2)
    assert loss(_x(), True, is_disc=True).item() == pytest.approx(
        _expected(gan_type, True, True, r=0.9, f=0.2), rel=1e-12
    )
    assert loss(_x(), False, is_disc=True).item() == pytest.approx(
        _expected(gan_type, False, True, r=0.9, f=0.2), rel=1e-12
    )


def test_standard_is_the_wgan_critic_loss_of_the_recipe():
    real_scores, fake_scores = _x([0.3, 1.2]), _x([-0.4, 0.1])
    loss = GANLoss("standard")
    d_loss = loss(real_scores, True, is_disc=True) + loss(fake_scores, False, is_disc=True)
    assert d_loss.item() == pytest.approx(-(0.3 + 1.2) / 2 + (-0.4 + 0.1) / 2)


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_loss_weight_scales_only_the_generator_loss(gan_type):
    weighted, plain = GANLoss(gan_type, loss_weight=3.0), GANLoss(gan_type)
    for real in (True, False):
        assert weighted(_x(), real, is_disc=False).item() == pytest.approx(
            3.0 * plain(_x(), real, is_disc=False).item()
        )
        assert weighted(_x(), real, is_disc=True).item() == pytest.approx(
            plain(_x(), real, is_disc=True).item()
        )


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_gradient_signs(gan_type):
    # Scores inside every margin: judged real, raising a score must lower the loss; judged
    # fake, raising it must raise the loss.
    for values, real, sign in (([-0.5, 0.2, 0.7], True, -1), ([0.1, 0.4, 0.8], False, 1)):
        for disc in (True, False):
            x = _x(values).requires_grad_(True)
            GANLoss(gan_type)(x, real, is_disc=disc).backward()
            assert torch.isfinite(x.grad).all()
            assert (torch.sign(x.grad) == sign).all(), (gan_type, real, disc, x.grad.flatten())


@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_forward_backward_through_the_real_discriminator(gan_type, device):
    torch.manual_seed(0)
    net_d = build_network({"type": "Discriminator"}, "network_d").to(device)
    real_images = torch.rand(2, 3, 40, 48, device=device)
    fake_images = torch.rand(2, 3, 40, 48, device=device, requires_grad=True)
    loss = GANLoss(gan_type)
    d_loss = loss(net_d(real_images), True, is_disc=True) + loss(
        net_d(fake_images.detach()), False, is_disc=True
    )
    d_loss.backward()
    grads = [p.grad for p in net_d.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert fake_images.grad is None
    g_loss = loss(net_d(fake_images), True, is_disc=False)
    g_loss.backward()
    assert torch.isfinite(fake_images.grad).all() and fake_images.grad.abs().sum() > 0


def test_half_precision_scores_give_a_float32_loss():
    x = _x().bfloat16()
    assert GANLoss("vanilla")(x, True).dtype == torch.float32


def test_build_from_gan_opt():
    loss = build_loss(
        {
            "type": "GANLoss",
            "gan_type": "standard",
            "real_label_val": 1.0,
            "fake_label_val": 0.0,
            "loss_weight": 1,
        },
        "gan_opt",
    )
    assert isinstance(loss, GANLoss) and loss.gan_type == "standard"


def test_errors():
    with pytest.raises(ValueError, match=r"'wgan-gp'.*'standard'.*'hinge'.*'wgan_softplus'"):
        GANLoss("wgan-gp")
    with pytest.raises(TypeError, match="gan_opt.*gan_type"):
        build_loss({"type": "GANLoss"}, "gan_opt")
    with pytest.raises(ValueError, match="real_label_val"):
        GANLoss("vanilla", real_label_val="one")
    with pytest.raises(ValueError, match="loss_weight"):
        GANLoss("vanilla", loss_weight=None)
    with pytest.raises(TypeError, match="bool"):
        GANLoss("standard")(_x(), torch.tensor(True))
