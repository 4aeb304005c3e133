"""Network architectures, resolved from ``network_g`` / ``network_d`` by ``type``.

A new architecture is one new ``*_arch.py`` file in this folder that registers its class.
"""

from __future__ import annotations

from typing import Any, Dict

from torch import nn

from lptn.registry import Registry, build_from_registry, import_modules_with_suffix

ARCH_REGISTRY = Registry("arch")


def build_network(opt: Dict[str, Any], key_path: str = "network_g") -> nn.Module:
    """Build a network from its option block, e.g. ``{'type': 'LPTN', 'num_high': 3}``.

    Raises:
        KeyError: an unknown ``type``, naming ``key_path`` and the closest registered types.

    Examples:
        >>> import torch
        >>> net = build_network({"type": "LPTN", "num_high": 3})
        >>> sum(p.numel() for p in net.parameters())  # the FiveK model's size
        617567
        >>> net(torch.rand(1, 3, 64, 96)).shape  # (N, 3, H, W) in, the same shape out
        torch.Size([1, 3, 64, 96])
        >>> build_network({"type": "LPTM"})
        Traceback (most recent call last):
        ...
        KeyError: "network_g.type: unknown arch type 'LPTM'. ... closest first: LPTN, ..."
    """
    return build_from_registry(ARCH_REGISTRY, dict(opt), key_path)


import_modules_with_suffix(__name__, __file__, "_arch")

__all__ = ["ARCH_REGISTRY", "build_network"]
