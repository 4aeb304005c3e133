"""WGAN-GP penalty against closed forms, finite differences and per-sample autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lptn.archs import build_network
from lptn.losses import build_gradient_penalty, gradient_penalty
from lptn.losses.gradient_penalty import GradientPenaltyLoss


class LinearCritic(nn.Module):
    """``D(x)_i = sum(w * x_i)``: its input gradient is ``w`` everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def _small_conv_critic(norm: bool, size: int) -> nn.Module:
    """A nonlinear critic for (N, 3, size, size) inputs, per-sample (no batch statistics)."""
    layers = [nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Tanh()]
    if norm:
        layers.append(nn.InstanceNorm2d(4, affine=True))
    features = 2 * ((size + 1) // 2 - 2) ** 2
    layers += [nn.Conv2d(4, 2, 3), nn.Softplus(), nn.Flatten(), nn.Linear(features, 1)]
    return nn.Sequential(*layers)


def _pair(shape, dtype=torch.float32, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    real = torch.rand(shape, generator=generator, dtype=dtype)
    fake = torch.rand(shape, generator=generator, dtype=dtype)
    alpha = torch.rand(shape[0], generator=generator, dtype=dtype)
    return real.to(device), fake.to(device), alpha.to(device)


def test_linear_critic_closed_form():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 5, dtype=torch.float64)
    w = 3.0 * w / w.norm()  # ||grad|| = 3 for every sample and every alpha
    critic = LinearCritic(w)
    real, fake, _ = _pair((4, 3, 4, 5), torch.float64)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(4.0, rel=1e-12)
    mask = torch.zeros(1, 1, 4, 5, dtype=torch.float64)
    mask[..., :2, :] = 1
    masked_norm = (w * mask).norm().item()
    assert gradient_penalty(critic, real, fake, weight=mask).item() == pytest.approx(
        (masked_norm - 1) ** 2, rel=1e-12
    )


def test_matches_central_finite_differences():
    torch.manual_seed(1)
    critic = _small_conv_critic(norm=False, size=5).double()
    real, fake, alpha = _pair((2, 3, 5, 5), torch.float64)
    penalty = gradient_penalty(critic, real, fake, alpha=alpha)

    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    h = 1e-6
    expected = []
    with torch.no_grad():
        for sample in x_hat:
            flat = sample.flatten()
            grad = torch.empty_like(flat)
            for k in range(flat.numel()):
                up, down = flat.clone(), flat.clone()
                up[k] += h
                down[k] -= h
                grad[k] = (critic(up.view(1, 3, 5, 5)) - critic(down.view(1, 3, 5, 5))).item()
            expected.append(((grad / (2 * h)).norm() - 1) ** 2)
    assert penalty.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-6)


def test_matches_per_sample_torch_func_gradients():
    torch.manual_seed(2)
    critic = _small_conv_critic(norm=True, size=8)
    real, fake, alpha = _pair((3, 3, 8, 8))
    x_hat = alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake
    per_sample = torch.func.vmap(torch.func.grad(lambda x: critic(x[None]).sum()))(x_hat)
    expected = ((per_sample.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty = gradient_penalty(critic, real, fake, alpha=alpha)
    torch.testing.assert_close(penalty, expected, rtol=1e-5, atol=1e-7)


def test_default_alpha_is_a_per_sample_uniform_draw_from_torch_rand():
    critic = _small_conv_critic(norm=True, size=8)
    real, fake, _ = _pair((3, 3, 8, 8))
    torch.manual_seed(5)
    drawn = gradient_penalty(critic, real, fake)
    torch.manual_seed(5)
    alpha = torch.rand(3, 1, 1, 1)
    torch.testing.assert_close(drawn, gradient_penalty(critic, real, fake, alpha=alpha))


def _d_grads(net: nn.Module, penalty: torch.Tensor):
    # A parameter the input gradient does not depend on (the last bias) gets no gradient.
    net.zero_grad(set_to_none=True)
    penalty.backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]


def test_real_discriminator_batch_equals_per_sample_and_trains_d(device):
    torch.manual_seed(3)
    net_d = build_network({"type": "Discriminator"}, "network_d").to(device)
    real, fake, alpha = _pair((2, 3, 24, 32), device=device)
    fake.requires_grad_(True)  # stands for a generator output

    penalty = gradient_penalty(net_d, real, fake, alpha=alpha)
    batched = _d_grads(net_d, penalty)
    assert fake.grad is None  # the penalty never trains the generator
    assert all(torch.isfinite(g).all() for g in batched)
    conv_weights = [
        g for (name, _), g in zip(net_d.named_parameters(), batched) if name.endswith("weight")
    ]
    assert len(conv_weights) == 7 and all(g.abs().sum() > 0 for g in conv_weights)

    # Independent: each sample alone through plain double-backward autograd.
    terms = []
    for i in range(2):
        x = alpha[i] * real[i : i + 1] + (1 - alpha[i]) * fake[i : i + 1].detach()
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(net_d(x).sum(), x, create_graph=True)
        terms.append((grad.norm() - 1) ** 2)
    expected = torch.stack(terms).mean()
    torch.testing.assert_close(penalty, expected, rtol=1e-5, atol=1e-7)
    for got, want in zip(batched, _d_grads(net_d, expected)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_scale_does_not_change_value_or_d_gradients(device):
    torch.manual_seed(4)
    net_d = build_network({"type": "Discriminator"}, "network_d").to(device)
    real, fake, alpha = _pair((2, 3, 16, 16), device=device)
    plain = gradient_penalty(net_d, real, fake, alpha=alpha)
    plain_grads = _d_grads(net_d, plain)
    for scale in (1024.0, torch.tensor(65536.0, device=device)):
        scaled = gradient_penalty(net_d, real, fake, alpha=alpha, scale=scale)
        torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-7)
        for got, want in zip(_d_grads(net_d, scaled), plain_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


def test_bfloat16_autocast_on_cpu():
    torch.manual_seed(6)
    net_d = build_network({"type": "Discriminator"}, "network_d")
    real, fake, alpha = _pair((2, 3, 16, 16))
    reference = gradient_penalty(net_d, real, fake, alpha=alpha)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        penalty = gradient_penalty(net_d, real, fake, alpha=alpha)
    assert penalty.dtype == torch.float32
    assert penalty.item() == pytest.approx(reference.item(), rel=0.05)
    grads = _d_grads(net_d, penalty)
    assert all(torch.isfinite(g).all() for g in grads)


def test_fp16_autocast_with_a_grad_scaler_scale(device):
    # The AMP recipe: the scaled inner gradient, unscaled before the norm, gives the float32
    # value. (Whether the outer backward overflows in fp16 is the GradScaler's business.)
    torch.manual_seed(7)
    net_d = build_network({"type": "Discriminator"}, "network_d").to(device)
    real, fake, alpha = _pair((2, 3, 16, 16), device=device)
    reference = gradient_penalty(net_d, real, fake, alpha=alpha)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**10)
    with torch.autocast(device.type, dtype=torch.float16):
        penalty = gradient_penalty(net_d, real, fake, alpha=alpha, scale=scaler.get_scale())
    assert penalty.dtype == torch.float32
    assert penalty.item() == pytest.approx(reference.item(), rel=0.01)


def test_works_inside_no_grad():
    critic = LinearCritic(torch.full((3, 2, 2), 0.5))
    real, fake, _ = _pair((2, 3, 2, 2))
    with torch.no_grad():
        penalty = gradient_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx(((0.5 * 12**0.5) - 1) ** 2, rel=1e-6)


def test_gp_opt_builds_a_weighted_module():
    critic = LinearCritic(torch.full((3, 2, 2), 0.5))
    real, fake, alpha = _pair((2, 3, 2, 2))
    gp = build_gradient_penalty({"loss_weight": 100})
    assert isinstance(gp, GradientPenaltyLoss) and gp.loss_weight == 100.0
    torch.testing.assert_close(
        gp(critic, real, fake, alpha=alpha), 100 * gradient_penalty(critic, real, fake, alpha=alpha)
    )
    assert isinstance(build_gradient_penalty({"type": "GradientPenaltyLoss"}), GradientPenaltyLoss)


def test_errors():
    critic = LinearCritic(torch.ones(3, 2, 2))
    real, fake, _ = _pair((2, 3, 2, 2))
    with pytest.raises(ValueError, match=r"real shape \(2, 3, 2, 2\).*fake shape"):
        gradient_penalty(critic, real, fake[:1])
    with pytest.raises(ValueError, match="alpha.*2"):
        gradient_penalty(critic, real, fake, alpha=torch.rand(3))
    for bad in (0.0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="scale"):
            gradient_penalty(critic, real, fake, scale=bad)
    with pytest.raises(TypeError, match="gp_opt.*GradientPenaltyLoss"):
        build_gradient_penalty({"loss_weight": 100, "lambda": 10})
    with pytest.raises(KeyError, match="gp_opt"):
        build_gradient_penalty(100)
    with pytest.raises(ValueError, match="loss_weight"):
        build_gradient_penalty({"loss_weight": "100"})
