"""Checkpoint I/O: safe reading of state dicts and atomic saving.

Reading never executes code from the file (``torch.load(weights_only=True)``). Saving is
atomic (:mod:`lptn.platform.atomic_file`), so a crash or a full disk never leaves a truncated
checkpoint and the previous file stays readable. Fitting a state dict into a network
is :mod:`lptn.archs.weight_loading`'s job.
"""

from __future__ import annotations

import errno
import os
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from lptn.platform.atomic_file import atomic_write

#: the entries of a ``{'params': ..., 'params_ema': ...}`` weights file, in the order
#: :func:`read_state_dict` prefers them when no key is asked for
PARAM_KEYS = ("params", "params_ema")

#: the entry beside :data:`PARAM_KEYS` that names the architecture a weights file holds, as
#: the ``network_g`` block that builds it (``{'type': 'LPTNPaper', 'num_high': 2, ...}``);
#: older files and the official LPTN file have none
ARCH_KEY = "arch"


class CheckpointError(RuntimeError):
    """A weights file that cannot be read or does not fit the network; names the file."""


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised from or while handling, is ``ENOSPC``.

    ``torch.save`` on a full disk raises ``RuntimeError: [enforce fail at
    inline_container.cc:...] unexpected pos``, the ``ENOSPC`` OSError of the failed write
    attached as its ``__context__``; some builds only say so in the message.
    """
    seen: Optional[BaseException] = err
    visited: set[int] = set()
    while seen is not None and id(seen) not in visited:
        visited.add(id(seen))
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if os.strerror(errno.ENOSPC) in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through :func:`~lptn.platform.atomic_file.atomic_write`.

    Raises:
        OSError: ``ENOSPC`` naming ``path`` when the device is full (whatever form torch's
            writer gives the failure), other OSErrors as they come; the temporary file is
            removed and an existing ``path`` is untouched.
    """
    try:
        with atomic_write(path) as fh:
            torch.save(obj, fh)
    except Exception as err:
        if not isinstance(err, OSError) and is_disk_full(err):
            # torch's RuntimeError: callers handle a full disk as the OSError it is.
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
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


def save_network(
    net: nn.Module,
    path: str | Path,
    param_key: str = "params",
    arch: Optional[Dict[str, Any]] = None,
) -> None:
    """Save ``{param_key: state_dict}`` (CPU tensors) atomically, with ``arch`` (the option
    block that builds ``net``, see :data:`ARCH_KEY`) beside it when given."""
    state = OrderedDict((k, v.detach().cpu()) for k, v in bare_module(net).state_dict().items())
    entries: Dict[str, Any] = {param_key: state}
    if arch is not None:
        entries[ARCH_KEY] = arch_entry(arch)
    save_atomic(entries, path)


def arch_entry(opt: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of the option block ``opt`` fit for :data:`ARCH_KEY`: ``type`` first, then the
    options, all plain values that ``torch.load(weights_only=True)`` reads back."""
    if not isinstance(opt, dict) or not isinstance(opt.get("type"), str):
        raise ValueError(f"arch: needs a 'type' naming the architecture, got {opt!r}")
    return {"type": opt["type"], **{k: v for k, v in opt.items() if k != "type"}}


def read_arch_options(path: str | Path) -> Optional[Dict[str, Any]]:
    """The :data:`ARCH_KEY` entry of the weights file ``path`` (a copy), or None when it has
    none (older files, the official LPTN file); raises :class:`CheckpointError` for an
    unreadable file or an entry without a ``type``."""
    data = _load_weights_file(Path(path))
    if not isinstance(data, dict) or ARCH_KEY not in data:
        return None
    entry = data[ARCH_KEY]
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise CheckpointError(
            f"{path}: its {ARCH_KEY!r} entry must be a dict with a 'type' string, got {entry!r}"
        )
    return dict(entry)


def weights_entries(path: str | Path) -> List[str]:
    """The :data:`PARAM_KEYS` entries that the weights file ``path`` holds (empty for a plain
    state_dict); raises :class:`CheckpointError` like :func:`read_state_dict`."""
    data = _load_weights_file(Path(path))
    return [k for k in PARAM_KEYS if isinstance(data, dict) and isinstance(data.get(k), dict)]


def _load_weights_file(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated zip, forbidden globals...
        # PyTorch's own text runs to several lines and advises weights_only=False: not shown.
        raise CheckpointError(f"{path}: {unreadable_reason(path, err)}") from err


def unreadable_reason(path: Path, err: Exception) -> str:
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
    data = _load_weights_file(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a state_dict, got {type(data).__name__}")
    wrapped = [k for k in PARAM_KEYS if isinstance(data.get(k), dict)]
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
