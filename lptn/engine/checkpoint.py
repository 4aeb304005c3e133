"""Checkpoint I/O: safe loading of network weights and atomic saving.

Loading never executes code from the file (``torch.load(weights_only=True)``). Saving writes a
temporary file beside the target and renames it, so a crash or a full disk never leaves a
truncated checkpoint and the previous file stays readable.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from lptn.archs.lptn_arch import lptn_options_from_state_dict

logger = logging.getLogger("lptn")

# Keys that the original code registered as a run-time alias of trans_mask_block_{L-1}.
_ALIAS_PREFIX = "trans_high.trans_mask_block."


class CheckpointError(RuntimeError):
    """A weights file that cannot be read or does not fit the network; names the file."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def bare_module(net: nn.Module) -> nn.Module:
    """The network inside DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(net, "module") and isinstance(net.module, nn.Module):
            net = net.module
        elif hasattr(net, "_orig_mod") and isinstance(net._orig_mod, nn.Module):
            net = net._orig_mod
        else:
            return net


def save_network(net: nn.Module, path: str | Path, param_key: str = "params") -> None:
    """Save ``{param_key: state_dict}`` (CPU tensors) atomically."""
    state = OrderedDict((k, v.detach().cpu()) for k, v in bare_module(net).state_dict().items())
    save_atomic({param_key: state}, path)


def read_state_dict(path: str | Path, param_key: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Read network weights from a plain state_dict or a ``{'params'|'params_ema': ...}`` file.

    ``param_key`` picks the entry when the file has several; by default ``params`` is
    preferred, then ``params_ema``. A ``module.`` prefix (DataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated zip, forbidden globals...
        raise CheckpointError(f"{path}: cannot be read as PyTorch weights "
                              f"(loaded with weights_only=True): {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(data).__name__}")
    wrapped = [k for k in ("params", "params_ema") if isinstance(data.get(k), dict)]
    if param_key is not None and param_key in data:
        data = data[param_key]
    elif param_key is not None and wrapped:
        raise CheckpointError(f"{path}: has no {param_key!r} entry (it has {', '.join(wrapped)})")
    elif wrapped:
        data = data[wrapped[0]]
    state = OrderedDict()
    for key, value in data.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor; not a state_dict")
        state[key[7:] if key.startswith("module.") else key] = value
    return state


def _drop_aliases(state: Dict[str, torch.Tensor], path: Path) -> Dict[str, torch.Tensor]:
    aliases = [k for k in state if k.startswith(_ALIAS_PREFIX)]
    if aliases:
        logger.info("%s: dropped %d alias keys (%s*), duplicates of the last mask block that "
                    "the original code registered at run time", path, len(aliases), _ALIAS_PREFIX)
        state = OrderedDict((k, v) for k, v in state.items() if k not in aliases)
    return state


def _mismatch_report(net: nn.Module, state: Dict[str, torch.Tensor]) -> List[str]:
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs network {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    lines = []
    if missing:
        lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}"
                     + (" ..." if len(missing) > 10 else ""))
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}"
                     + (" ..." if len(unexpected) > 10 else ""))
    if shapes:
        lines.append("shape mismatches: " + "; ".join(shapes[:10]))
    return lines


def load_network_weights(net: nn.Module, path: str | Path, *, strict: bool = True,
                         param_key: Optional[str] = None) -> nn.Module:
    """Load weights from ``path`` into ``net`` (unwrapped first) and return ``net``.

    Accepts the official LPTN file (plain state_dict with alias keys), BasicSR's
    ``{'params': ...}`` / ``{'params_ema': ...}`` and this project's own files. With
    ``strict`` any missing, unexpected or mis-shaped key is an error that lists them and, for
    LPTN-family files, the ``network_g`` options that would fit.
    """
    path = Path(path)
    target = bare_module(net)
    state = _drop_aliases(read_state_dict(path, param_key), path)
    problems = _mismatch_report(target, state)
    if problems and strict:
        fit = lptn_options_from_state_dict(state)
        hint = f"\nThe file fits network_g: {fit}" if fit else ""
        raise CheckpointError(f"{path}: does not match {type(target).__name__}:\n  "
                              + "\n  ".join(problems) + hint)
    if problems:
        logger.warning("%s: loading non-strictly: %s", path, "; ".join(problems))
        own = target.state_dict()
        state = OrderedDict((k, v) for k, v in state.items()
                            if k in own and own[k].shape == v.shape)
    target.load_state_dict(state, strict=strict)
    logger.info("loaded %s weights from %s", type(target).__name__, path)
    return net
