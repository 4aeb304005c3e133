"""The released critic (docs/REFERENCE.md s. 3) against a functional forward on its own weights.

The bilinear resize of the reference is written out with explicit source indices
(align_corners=False: src = (dst + 0.5) * in / out - 0.5, clamped at 0), not F.interpolate.
"""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
import torch.nn.functional as F

from lptn.archs import build_network

# (out_channels, in_channels, kernel) of every conv, input to output.
CONV_SHAPES = [(16, 3, 3), (32, 16, 3), (64, 32, 3), (128, 64, 3), (128, 128, 3), (1, 128, 8)]


def _axis_weights(n_in: int, n_out: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * n_in / n_out - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, src - lo


def bilinear_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size), half-pixel centres, no antialiasing."""
    lo, hi, w = _axis_weights(x.shape[-2], size)
    w = w.to(x.dtype)[:, None]
    x = x[..., lo, :] * (1 - w) + x[..., hi, :] * w
    lo, hi, w = _axis_weights(x.shape[-1], size)
    w = w.to(x.dtype)
    return x[..., lo] * (1 - w) + x[..., hi] * w


def reference_forward(
    x: torch.Tensor,
    convs: List[Tuple[torch.Tensor, torch.Tensor]],
    norm: Tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    x = bilinear_resize(x, 256)
    x = F.leaky_relu(F.conv2d(x, *convs[0], stride=2, padding=1), 0.2)
    x = F.instance_norm(x, weight=norm[0], bias=norm[1], eps=1e-5)
    for weight, bias in convs[1:-1]:
        x = F.leaky_relu(F.conv2d(x, weight, bias, stride=2, padding=1), 0.2)
    return F.conv2d(x, *convs[-1])


def split_parameters(net: torch.nn.Module):
    """The module's own weights: 4-D ones are convs, 1-D pairs of 16 the affine norm."""
    params = list(net.parameters())
    convs = [(w, b) for w, b in zip(params[::2], params[1::2]) if w.dim() == 4]
    norms = [(w, b) for w, b in zip(params[::2], params[1::2]) if w.dim() == 1]
    return convs, norms


@pytest.fixture
def critic() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network({"type": "Discriminator"}, key_path="network_d")
    # Non-trivial affine norm parameters so the check sees them.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.InstanceNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net


def test_parameter_layout(critic):
    convs, norms = split_parameters(critic)
    assert [(w.shape[0], w.shape[1], w.shape[2]) for w, _ in convs] == CONV_SHAPES
    assert all(w.shape[2] == w.shape[3] for w, _ in convs)
    assert all(b.shape == (w.shape[0],) for w, b in convs)
    assert [(w.shape, b.shape) for w, b in norms] == [((16,), (16,))]
    assert sum(p.numel() for p in critic.parameters()) == (
        sum(o * i * k * k + o for o, i, k in CONV_SHAPES) + 32
    )
    assert all(p.requires_grad for p in critic.parameters())
    # Instance norm without running statistics: nothing but parameters in the state_dict.
    assert len(critic.state_dict()) == len(list(critic.parameters()))
    assert len(set(critic.state_dict())) == len(critic.state_dict())


@pytest.mark.parametrize(
    "shape", [(1, 3, 256, 256), (2, 3, 64, 96), (1, 3, 300, 517), (3, 3, 17, 9), (1, 3, 513, 1024)]
)
def test_output_is_one_score_per_image(critic, shape):
    with torch.no_grad():
        out = critic(torch.rand(*shape))
    assert out.shape == (shape[0], 1, 1, 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(256, 256), (96, 64), (300, 517), (17, 9)])
def test_matches_functional_reference_with_bilinear_resize(critic, size):
    critic = critic.double()
    x = torch.rand(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    convs, norms = split_parameters(critic)
    with torch.no_grad():
        out = critic(x)
        want = reference_forward(x, convs, norms[0])
    assert (out - want).abs().max().item() <= 1e-10
    if size != (256, 256):
        # The resize mode matters: align_corners=True gives a different score.
        resized = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=True)
        with torch.no_grad():
            other = critic.model(resized)
        assert (out - other).abs().max().item() > 1e-8


def test_float32_forward_matches_reference(critic, device):
    x = torch.rand(2, 3, 120, 200)
    convs, norms = split_parameters(critic)
    with torch.no_grad():
        want = reference_forward(
            x.double(),
            [(w.double(), b.double()) for w, b in convs],
            tuple(t.double() for t in norms[0]),
        )
        out = critic.to(device)(x.to(device)).cpu()
    assert (out.double() - want).abs().max().item() <= 1e-4


def test_input_size_other_than_256_is_refused():
    with pytest.raises(ValueError, match="input_size"):
        build_network({"type": "Discriminator", "input_size": 128}, key_path="network_d")
