"""The batched torch PSNR / SSIM agree with the numpy ones (1e-4 dB, 1e-5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lptn.metrics import calculate_psnr, calculate_ssim, psnr_torch, ssim_torch

PSNR_TOL = 1e-4
SSIM_TOL = 1e-5
SETTINGS = [
    dict(crop_border=0, test_y_channel=False),
    dict(crop_border=4, test_y_channel=False),
    dict(crop_border=0, test_y_channel=True),
    dict(crop_border=4, test_y_channel=True),
]


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255


def to_levels(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8 via round(clip(x, 0, 1) * 255)."""
    levels = np.round(np.clip(t.double().numpy(), 0, 1) * 255).astype(np.uint8)
    return levels.transpose(1, 2, 0)


@pytest.mark.parametrize(
    "setting",
    SETTINGS,
    ids=lambda s: f"crop{s['crop_border']}-{'y' if s['test_y_channel'] else 'rgb'}",
)
def test_fivek_agreement(fivek_uint8_pairs, setting):
    for name, src, tgt in fivek_uint8_pairs[::4]:
        p = psnr_torch(to_tensor(src), to_tensor(tgt), **setting)
        s = ssim_torch(to_tensor(src), to_tensor(tgt), **setting)
        assert p.shape == s.shape == (1,)
        assert p.dtype == s.dtype == torch.float64
        assert abs(p.item() - calculate_psnr(src, tgt, **setting)) < PSNR_TOL, name
        assert abs(s.item() - calculate_ssim(src, tgt, **setting)) < SSIM_TOL, name


@pytest.mark.parametrize("setting", SETTINGS[1:], ids=["crop4-rgb", "crop0-y", "crop4-y"])
def test_generated_batch_agreement(setting, device):
    """Unquantised inputs, some outside [0, 1]: torch quantises like the numpy pipeline.

    ``device`` comes from tests/conftest.py (every available device by default).
    """
    gen = torch.Generator().manual_seed(7)
    yy, xx = torch.meshgrid(torch.arange(37.0), torch.arange(52.0), indexing="ij")
    smooth = 0.5 + 0.45 * torch.sin(xx / 6 + torch.arange(3.0).view(3, 1, 1)) * torch.cos(yy / 4)
    target = torch.stack([smooth * scale for scale in (1.0, 0.8, 1.1, 0.6)])
    pred = target + 0.08 * torch.randn(target.shape, generator=gen) + 0.03
    p = psnr_torch(pred.to(device), target.to(device), **setting)
    s = ssim_torch(pred.to(device), target.to(device), **setting)
    assert p.shape == s.shape == (4,)
    assert p.device == s.device == pred.to(device).device
    p, s = p.cpu(), s.cpu()
    for i in range(4):
        a, b = to_levels(pred[i]), to_levels(target[i])
        assert abs(p[i].item() - calculate_psnr(a, b, **setting)) < PSNR_TOL
        assert abs(s[i].item() - calculate_ssim(a, b, **setting)) < SSIM_TOL


def test_identical_and_offset_in_one_batch():
    target = torch.rand(3, 3, 16, 20, generator=torch.Generator().manual_seed(0)) * 0.8
    pred = target.clone()
    pred[1] = torch.round(target[1] * 255).add(5) / 255  # every level +5 in image 1
    pred[2] = 1 - target[2]
    p = psnr_torch(pred, target)
    assert p[0].item() == math.inf
    assert p[1].item() == pytest.approx(20 * math.log10(255 / 5), abs=1e-9)
    assert math.isfinite(p[2].item())
    assert ssim_torch(pred, target)[0].item() == pytest.approx(1.0, abs=1e-12)


def test_crop_border_removes_border():
    gen = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 24, 30, generator=gen)
    pred = (target + 0.05 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    changed = pred.clone()
    changed[..., :4, :] = 0
    changed[..., :, -4:] = torch.rand(changed[..., :, -4:].shape, generator=gen)
    for metric in (psnr_torch, ssim_torch):
        assert torch.equal(
            metric(changed, target, crop_border=4), metric(pred, target, crop_border=4)
        )
        assert not torch.equal(metric(changed, target), metric(pred, target))


def test_errors():
    a = torch.zeros(2, 3, 20, 20)
    with pytest.raises(ValueError, match=r"\(2, 3, 20, 20\).*\(2, 3, 20, 21\)"):
        psnr_torch(a, torch.zeros(2, 3, 20, 21))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        ssim_torch(a[0], a[0])
    with pytest.raises(ValueError, match="11x11"):
        ssim_torch(a, a, crop_border=5)
    with pytest.raises(ValueError, match="RGB"):
        psnr_torch(a[:, :1], a[:, :1], test_y_channel=True)
