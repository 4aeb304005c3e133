"""Network architectures, resolved from ``network_g`` / ``network_d`` by ``type``.

:func:`build_network` is the one way from an option block (YAML, a weights file's ``arch``
entry, or code) to a network: training and test models, ``load_generator`` and the tests all
call it. A new architecture is one new ``*_arch.py`` file in this folder that registers its
class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from torch import nn

from lptn.registry import Registry, import_modules_with_suffix

ARCH_REGISTRY = Registry("arch")


def build_network(
    opt: Mapping[str, Any],
    key_path: str = "network_g",
    *,
    weights: Optional[str | Path] = None,
    strict: bool = True,
    param_key: Optional[str] = None,
) -> nn.Module:
    """Build a network from its option block, e.g. ``{'type': 'LPTN', 'num_high': 3}``.

    Args:
        opt: ``type`` (a registered architecture) plus the keyword arguments of its class.
        key_path: the block's place in the options (``network_g``), named by errors.
        weights: a ``.pth`` file to load into the new network (official, BasicSR-style or
            this project's; see :func:`lptn.archs.weight_loading.load_network_weights`);
            None keeps the class's initialisation.
        strict: every key of the file must fit the network (else mismatches are logged).
        param_key: ``params`` or ``params_ema`` for files that hold both.

    Raises:
        KeyError: an unknown ``type``, naming ``key_path`` and the closest registered types.
        TypeError: an argument the class does not take, naming ``key_path``.
        CheckpointError: ``weights`` unreadable or, with ``strict``, not fitting the network.

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
    kwargs = dict(opt)
    if "type" not in kwargs:
        raise KeyError(f"{key_path}: needs a 'type' key, got {opt!r}")
    type_name = kwargs.pop("type")
    cls = ARCH_REGISTRY.get(type_name, f"{key_path}.type")
    try:
        net: nn.Module = cls(**kwargs)
    except TypeError as err:
        raise TypeError(f"{key_path} ({type_name}): {err}") from err
    if weights is None:
        return net
    # Imported here: weight_loading reads lptn_arch, which imports this package.
    from lptn.archs.weight_loading import load_network_weights

    return load_network_weights(net, weights, strict=strict, param_key=param_key)


import_modules_with_suffix(__name__, __file__, "_arch")

__all__ = ["ARCH_REGISTRY", "build_network"]
