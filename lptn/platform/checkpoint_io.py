"""Checkpoint I/O: safe reading of state dicts and atomic saving.

Reading never executes code from the file (``torch.load(weights_only=True)``). Saving writes a
temporary file beside the target and renames it, so a crash or a full disk never leaves a
truncated checkpoint and the previous file stays readable. Fitting a state dict into a network
is :mod:`lptn.archs.weight_loading`'s job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import uuid
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

logger = logging.getLogger("lptn")


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
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:
            # A failed write names no file; the caller's message needs the target's folder.
            err.filename = str(path)
        raise


def write_text_atomic(text: str, path: str | Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and ``os.replace``, so a
    crash never leaves a truncated report and the previous one stays readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        # os.open with 0o666 keeps the user's umask (mkstemp would force 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
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


def _unreadable_reason(path: Path, err: Exception) -> str:
    """Why ``torch.load`` could not read ``path``, in a few plain words."""
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if refused:  # a class or function that weights_only=True does not unpickle
        return (
            f"holds a Python object ({refused.group(1)}) besides tensors, which is not "
            "unpickled: weights are read with weights_only=True so that no code in the file "
            "runs; save a state_dict of tensors"
        )
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as os_err:
        return f"cannot be read ({os_err.strerror or os_err})"
    if not head:
        return "not a weights file (it is empty)"
    if head.startswith(b"PK\x03\x04"):  # the zip archive of torch.save since PyTorch 1.6
        if not zipfile.is_zipfile(path):
            return "damaged weights file (cut short: its zip archive is incomplete)"
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as zip_err:
            return f"damaged weights file ({zip_err})"
        if not any(name.endswith("data.pkl") for name in names):
            return "not a PyTorch weights file (a zip archive of other files)"
        if bad is not None:
            return f"damaged weights file (its entry {bad} fails its checksum)"
        return "damaged weights file (corrupt data in its zip archive)"
    if head[0] == 0x80:  # the pickle protocol opcode: torch.save's older format
        return "damaged weights file (cut short or corrupt)"
    return "not a PyTorch weights file (neither a zip archive nor a pickle)"


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
        # PyTorch's own text runs to several lines and advises weights_only=False: not shown.
        raise CheckpointError(f"{path}: {_unreadable_reason(path, err)}") from err
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
