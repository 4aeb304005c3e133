"""Fit a weights file into a network: the official LPTN file, BasicSR's wrapped files and this
project's own, with a report that names what does not fit."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from lptn.archs.lptn_arch import lptn_options_from_state_dict
from lptn.platform.checkpoint_io import (
    CheckpointError,
    bare_module,
    read_arch_options,
    read_state_dict,
)

logger = logging.getLogger("lptn")

# Keys that the original code registered as a run-time alias of trans_mask_block_{L-1}.
_ALIAS_PREFIX = "trans_high.trans_mask_block."


def _drop_aliases(state: Dict[str, torch.Tensor], path: Path) -> Dict[str, torch.Tensor]:
    aliases = [k for k in state if k.startswith(_ALIAS_PREFIX)]
    if aliases:
        # Expected for the official file (every run has them): not worth a line at INFO.
        logger.debug(
            "%s: dropped %d alias keys (%s*), duplicates of the last mask block that "
            "the original code registered at run time",
            path,
            len(aliases),
            _ALIAS_PREFIX,
        )
        state = OrderedDict((k, v) for k, v in state.items() if k not in aliases)
    return state


def _mismatch_report(net: nn.Module, state: Dict[str, torch.Tensor]) -> List[str]:
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    lines = []
    if missing:
        lines.append(
            f"missing keys ({len(missing)}): {', '.join(missing[:10])}"
            + (" ..." if len(missing) > 10 else "")
        )
    if unexpected:
        lines.append(
            f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}"
            + (" ..." if len(unexpected) > 10 else "")
        )
    if shapes:
        lines.append("shape mismatches: " + "; ".join(shapes[:10]))
    return lines


def load_network_weights(
    net: nn.Module, path: str | Path, *, strict: bool = True, param_key: Optional[str] = None
) -> nn.Module:
    """Load weights from ``path`` into ``net`` (unwrapped first) and return ``net``.

    Accepts the official LPTN file (plain state_dict with alias keys), BasicSR's
    ``{'params': ...}`` / ``{'params_ema': ...}`` and this project's own files. With
    ``strict`` any missing, unexpected or mis-shaped key is an error that lists them and, for
    files that name their architecture or LPTN-family files, the ``network_g`` options that
    would fit.
    """
    path = Path(path)
    target = bare_module(net)
    state = _drop_aliases(read_state_dict(path, param_key), path)
    problems = _mismatch_report(target, state)
    if problems and strict:
        fit = read_arch_options(path) or lptn_options_from_state_dict(state)
        hint = f"\nThe file fits network_g: {fit}" if fit else ""
        raise CheckpointError(
            f"{path}: does not match {type(target).__name__}:\n  " + "\n  ".join(problems) + hint
        )
    if problems:
        logger.warning("%s: loading non-strictly: %s", path, "; ".join(problems))
        own = target.state_dict()
        state = OrderedDict(
            (k, v) for k, v in state.items() if k in own and own[k].shape == v.shape
        )
    target.load_state_dict(state, strict=strict)
    logger.info("loaded %s weights from %s", type(target).__name__, path)
    return net
