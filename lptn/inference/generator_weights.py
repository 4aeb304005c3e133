"""Build the generator that fits a weights file, for the inference entry points.

Without a weights file the built-in FiveK checkpoint is used: the generator released by the
LPTN authors (Liang, Zeng, Zhang, CVPR 2021; Apache-2.0), shipped as package data in
``lptn/weights`` and checked against its sha256 before it is read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, Optional

from torch import nn

from lptn.archs import ARCH_REGISTRY, build_network
from lptn.archs.laplacian_pyramid import min_input_size
from lptn.archs.lptn_arch import lptn_options_from_state_dict
from lptn.platform.checkpoint_io import (
    ARCH_KEY,
    CheckpointError,
    read_arch_options,
    read_state_dict,
)

BUILTIN_WEIGHTS_NAME = "net_g_FiveK_numhigh3.pth"
BUILTIN_WEIGHTS_SHA256 = "938542ae41c954759ca8c32140c133fea3f75373267ba5ab9b34d59eedda6154"


def builtin_weights_path() -> Path:
    """The built-in FiveK checkpoint (nrb_low 5, nrb_high 3, num_high 3), after checking its
    sha256; raises :class:`CheckpointError` when it is missing or altered."""
    path = Path(__file__).resolve().parents[1] / "weights" / BUILTIN_WEIGHTS_NAME
    return verify_weights_file(path, BUILTIN_WEIGHTS_SHA256)


def verify_weights_file(path: Path, sha256: str) -> Path:
    """``path`` if its sha256 is ``sha256``; :class:`CheckpointError` naming it otherwise."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise CheckpointError(
            f"{path}: the built-in weights are missing ({err.strerror or err}); reinstall lptn "
            "or pass --weights"
        ) from err
    if digest != sha256:
        raise CheckpointError(
            f"{path}: the built-in weights are damaged (sha256 {digest}, expected {sha256}); "
            "reinstall lptn or pass --weights"
        )
    return path


def load_generator(
    weights: Optional[str | Path] = None,
    network_opt: Optional[Dict[str, Any]] = None,
    param_key: Optional[str] = None,
) -> nn.Module:
    """The generator that fits ``weights``, with the weights loaded strictly.

    The architecture is ``network_opt`` when given, else the file's ``arch`` entry (files
    written by training and ``lptn-learn``), else LPTN's options inferred from the tensors
    (the official file and older ones).

    Args:
        weights: a ``.pth`` file (official, BasicSR-style or this project's); None = the
            built-in FiveK checkpoint (:func:`builtin_weights_path`).
        network_opt: a ``network_g`` block; read from the file when not given.
        param_key: ``params`` or ``params_ema`` for files that hold both.

    Examples:
        >>> net = load_generator()  # the built-in FiveK checkpoint; architecture from the file
        >>> type(net).__name__, net.num_high
        ('LPTN', 3)
        >>> import torch
        >>> with torch.no_grad():
        ...     out = net(torch.full((1, 3, 64, 64), 0.5))  # mid-grey, (N, 3, H, W) in [0, 1]
        >>> out.mean(dim=(2, 3))  # the FiveK expert brightens it (random weights would not)
        tensor([[0.629, 0.653, 0.626]])
    """
    if weights is None:
        weights = builtin_weights_path()
    if network_opt is None:
        network_opt = generator_options(weights, param_key)
    return build_network(network_opt, "network_g", weights=weights, param_key=param_key)


def generator_options(weights: str | Path, param_key: Optional[str] = None) -> Dict[str, Any]:
    """The ``network_g`` block that builds the generator of ``weights``: its ``arch`` entry,
    or LPTN's options read from its tensors; :class:`CheckpointError` naming the file when it
    has neither."""
    arch = read_arch_options(weights)
    if arch is not None:
        if arch["type"] not in ARCH_REGISTRY:
            raise CheckpointError(
                f"{weights}: arch: {ARCH_REGISTRY.unknown_message(arch['type'], 'type')}"
            )
        return arch
    inferred = lptn_options_from_state_dict(read_state_dict(weights, param_key))
    if inferred is None:
        raise CheckpointError(
            f"{weights}: names no architecture (no {ARCH_KEY!r} entry beside its weights) and "
            f"its tensors are not LPTN's; save it with lptn's training, or add "
            f"{ARCH_KEY!r}: {{'type': ..., <options>}} (one of {', '.join(ARCH_REGISTRY)})"
        )
    return inferred


def generator_min_side(net: nn.Module) -> int:
    """The smallest image side ``net`` takes, in pixels: ``2**num_high + 1`` for a pyramid
    generator (LPTN family), a generator's own ``min_input_side`` when it has one, else 1."""
    num_high = getattr(net, "num_high", None)
    if isinstance(num_high, int):
        return min_input_size(num_high)
    return int(getattr(net, "min_input_side", 1))
