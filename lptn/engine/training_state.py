"""The resumable training state: what ``training_states/{iter}.state`` holds, and finding it.

A state file is a dict of tensors and plain Python containers only, so it loads with
``torch.load(weights_only=True)`` (no code runs from the file):

``{'format': 'lptn-training-state', 'version': 1, 'iter': int, 'epoch': int,
'epoch_batches': int (batches of ``epoch`` already consumed), 'seed': int,
'best': {'metric': str|None, 'value': float|None, 'iter': int|None},
'nonfinite_streak': int, 'model': LPTNModel.state_dict(), 'rng': capture_rng_state(...)}``,
plus, from :class:`~lptn.engine.checkpointer.Checkpointer`, ``'settings'`` (the ``train``
options a resumed run may change, to report the changes) and ``'validation_pending'`` (the
validation of that iteration had not completed: a resumed run runs it first).

The network weights are not inside: they are ``models/net_g_{iter}.pth`` (and ``net_d_``),
written before the state, so an existing state always has its weights.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from lptn.platform.checkpoint_io import save_atomic, unreadable_reason

STATE_FORMAT = "lptn-training-state"
STATE_VERSION = 1
_STATE_NAME = re.compile(r"^(\d+)\.state$")

logger = logging.getLogger("lptn")


class TrainingStateError(RuntimeError):
    """A state file that cannot be read or is not an lptn training state; names the file."""


def _device_rng_module(device: torch.device) -> Optional[Any]:
    """``torch.cuda`` / ``torch.npu`` / ... when it exposes per-device RNG states."""
    if device.type == "cpu":
        return None
    module = getattr(torch, device.type, None)
    if module is None or not hasattr(module, "get_rng_state_all"):
        return None
    return module


def capture_rng_state(device: torch.device) -> Dict[str, Any]:
    """Python, numpy (legacy global) and torch generator states, plus the accelerator's.

    numpy's ``(name, keys, pos, has_gauss, cached_gaussian)`` is stored with ``keys`` as an
    int64 tensor so the whole dict stays loadable with ``weights_only=True``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (
            str(name),
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "torch": torch.get_rng_state(),
        "device_type": device.type,
        "device": [],
    }
    module = _device_rng_module(device)
    if module is not None:
        state["device"] = list(module.get_rng_state_all())
    return state


def restore_rng_state(state: Dict[str, Any], device: torch.device) -> None:
    """Inverse of :func:`capture_rng_state`; accelerator states are restored when the state
    was saved on the same kind and number of devices, otherwise a warning says they are not."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
    )
    torch.set_rng_state(state["torch"])
    saved = state.get("device") or []
    module = _device_rng_module(device)
    if module is None:
        return
    if state.get("device_type") == device.type and len(saved) == module.device_count():
        module.set_rng_state_all(saved)
    else:
        logger.warning(
            "the training state's %s RNG states (%d devices) do not fit this machine "
            "(%s, %d devices): device random streams restart from the seed",
            state.get("device_type"),
            len(saved),
            device.type,
            module.device_count(),
        )


def make_training_state(
    *,
    iteration: int,
    epoch: int,
    epoch_batches: int,
    seed: int,
    best: Dict[str, Any],
    nonfinite_streak: int,
    model_state: Dict[str, Any],
    device: torch.device,
) -> Dict[str, Any]:
    """Assemble the state dict described in the module docstring (captures the RNGs now)."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "iter": int(iteration),
        "epoch": int(epoch),
        "epoch_batches": int(epoch_batches),
        "seed": int(seed),
        "best": dict(best),
        "nonfinite_streak": int(nonfinite_streak),
        "model": model_state,
        "rng": capture_rng_state(device),
    }


def state_path(states_dir: str | Path, iteration: int) -> Path:
    """``{states_dir}/{iteration}.state``."""
    return Path(states_dir) / f"{int(iteration)}.state"


def save_training_state(state: Dict[str, Any], states_dir: str | Path) -> Path:
    """Write ``{states_dir}/{iter}.state`` atomically; returns its path."""
    path = state_path(states_dir, state["iter"])
    save_atomic(state, path)
    return path


def load_training_state(path: str | Path) -> Dict[str, Any]:
    """Read a state file with ``weights_only=True`` onto the CPU and check its format."""
    path = Path(path)
    if not path.is_file():
        raise TrainingStateError(f"{path}: training state file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, foreign pickle...
        # PyTorch's own text runs to several lines and advises weights_only=False: not shown.
        reason = unreadable_reason(path, err).replace("weights file", "training state file")
        raise TrainingStateError(f"{path}: {reason}") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingStateError(
            f"{path}: not an lptn training state (no format={STATE_FORMAT!r} entry)"
        )
    if state.get("version") != STATE_VERSION:
        raise TrainingStateError(
            f"{path}: training state version {state.get('version')!r}; "
            f"this lptn reads version {STATE_VERSION}"
        )
    return state


def list_states(states_dir: str | Path) -> List[Path]:
    """``{iter}.state`` files in ``states_dir``, newest (highest iteration) first."""
    folder = Path(states_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _STATE_NAME.match(p.name)) and p.is_file()
    ]
    return [p for _, p in sorted(found, reverse=True)]


__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "TrainingStateError",
    "capture_rng_state",
    "restore_rng_state",
    "make_training_state",
    "state_path",
    "save_training_state",
    "load_training_state",
    "list_states",
]
