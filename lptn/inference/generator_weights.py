"""Build the generator that fits a weights file, for the inference entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from torch import nn

from lptn.archs import build_network
from lptn.archs.lptn_arch import lptn_options_from_state_dict
from lptn.archs.weight_loading import load_network_weights
from lptn.platform.checkpoint_io import CheckpointError, read_state_dict


def load_generator(
    weights: str | Path,
    network_opt: Optional[Dict[str, Any]] = None,
    param_key: Optional[str] = None,
) -> nn.Module:
    """The generator that fits ``weights``, with the weights loaded strictly.

    Args:
        weights: a ``.pth`` file (official, BasicSR-style or this project's).
        network_opt: a ``network_g`` block; inferred from the file when not given.
        param_key: ``params`` or ``params_ema`` for files that hold both.
    """
    if network_opt is None:
        network_opt = lptn_options_from_state_dict(read_state_dict(weights, param_key))
        if network_opt is None:
            raise CheckpointError(
                f"{weights}: cannot infer the architecture; pass the network_g options"
            )
    net = build_network(network_opt, "network_g")
    return load_network_weights(net, weights, strict=True, param_key=param_key)
