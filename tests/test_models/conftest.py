"""Tiny LPTN training setups for the model tests (no files: batches are made in memory)."""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict

import pytest
import torch
import torch.nn.functional as F

BASE_OPTIONS: Dict[str, Any] = {
    "name": "model_test",
    "model_type": "LPTNModel",
    "datasets": {"train": {"type": "UnPairedImageDataset"}},
    "network_g": {"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 3},
    "network_d": {"type": "Discriminator"},
    "path": {},
    "train": {
        "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
        "optim_d": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
        "scheduler": {"type": "MultiStepLR", "milestones": [100], "gamma": 0.5},
        "total_iter": 10,
        "pixel_opt": {"type": "MSELoss", "loss_weight": 1000, "reduction": "mean"},
        "gan_opt": {"type": "GANLoss", "gan_type": "standard", "loss_weight": 1},
        "gp_opt": {"loss_weight": 100},
        "net_d_iters": 1,
        "net_d_init_iters": 0,
    },
}


@pytest.fixture
def make_options() -> Callable[..., Dict[str, Any]]:
    """``make_options(paired=False, gan=True, **train_overrides)`` -> an option dict."""

    def make(paired: bool = False, gan: bool = True, **train: Any) -> Dict[str, Any]:
        opt = copy.deepcopy(BASE_OPTIONS)
        if paired:
            opt["datasets"]["train"]["type"] = "PairedImageDataset"
        if not gan:
            del opt["network_d"]
            for key in ("optim_d", "gan_opt", "gp_opt"):
                del opt["train"][key]
        opt["train"].update(train)
        return opt

    return make


def _smooth(generator: torch.Generator, n: int, size: int) -> torch.Tensor:
    coarse = torch.rand(n, 3, 4, 4, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


@pytest.fixture
def batch() -> Dict[str, torch.Tensor]:
    """Two 32x32 inputs, their 'retouched' targets (gt) and two other target-domain images."""
    gen = torch.Generator().manual_seed(3)
    lq = _smooth(gen, 2, 32)

    def retouch(x):
        return (x * 0.8 + torch.tensor([0.15, 0.1, 0.05]).view(1, 3, 1, 1)).clamp(0, 1)

    return {"lq": lq, "gt": retouch(lq), "ref": retouch(_smooth(gen, 2, 32))}


def _photo_crops(n: int, size: int, offset: int) -> torch.Tensor:
    from skimage import data as skdata

    photos = [skdata.astronaut(), skdata.coffee()]
    crops = []
    for i in range(n):
        img = photos[i % len(photos)]
        y, x = 100 + offset + 37 * i, 150 + offset
        crops.append(torch.from_numpy(img[y : y + size, x : x + size].copy()))
    return torch.stack(crops).permute(0, 3, 1, 2).float().div(255).contiguous()


@pytest.fixture
def photo_batch() -> Dict[str, torch.Tensor]:
    """Two 32x32 crops of real photos (scikit-image's astronaut and coffee) as ``lq``, two
    other crops of them as ``ref``/``gt``: real image statistics for numerical comparisons."""
    other = _photo_crops(2, 32, 60)
    return {"lq": _photo_crops(2, 32, 0), "ref": other, "gt": other}
