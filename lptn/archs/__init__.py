"""Network architectures, resolved from ``network_g`` / ``network_d`` by ``type``.

A new architecture is one new ``*_arch.py`` file in this folder that registers its class.
"""

from __future__ import annotations

from typing import Any, Dict

from torch import nn

from lptn.registry import Registry, build_from_registry, import_modules_with_suffix

ARCH_REGISTRY = Registry("arch")


def build_network(opt: Dict[str, Any], key_path: str = "network_g") -> nn.Module:
    """Build a network from its option block, e.g. ``{'type': 'LPTN', 'num_high': 3}``."""
    return build_from_registry(ARCH_REGISTRY, dict(opt), key_path)


import_modules_with_suffix(__name__, __file__, "_arch")

__all__ = ["ARCH_REGISTRY", "build_network"]
