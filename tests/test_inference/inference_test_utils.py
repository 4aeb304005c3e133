"""Helpers shared by the fast-path tests."""

from __future__ import annotations

import torch

from lptn.archs import build_network


def random_lptn(arch: str, num_high: int, seed: int = 0, nrb: int = 1) -> torch.nn.Module:
    """A small LPTN / LPTNPaper with PyTorch's default random init and random biases (so
    every mask block matters), eval mode."""
    torch.manual_seed(seed)
    net = build_network({"type": arch, "nrb_low": nrb, "nrb_high": nrb, "num_high": num_high})
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return net.eval()
