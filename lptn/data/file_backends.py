"""Where image bytes come from: a folder on disk or an LMDB file (BasicSR layout).

A backend lists its keys (``keys()``) and returns encoded bytes for a key (``get(key)``);
datasets decode them with :func:`lptn.data.image_io.decode_image`.

LMDB layout (as BasicSR writes it): a folder ``X.lmdb`` holding ``data.mdb``/``lock.mdb`` and
``meta_info.txt`` with one ``name.png (h,w,c) compress_level`` line per image; the LMDB key is
the name without its extension and the value the encoded PNG.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from lptn.data.image_io import is_image_file


class FileBackend:
    """Interface: a read-only mapping from keys to encoded image bytes."""

    #: the folder or LMDB path
    root: Path

    def keys(self) -> List[str]:
        """All keys, sorted."""
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        """Encoded bytes of ``key``; ``KeyError`` naming the key and the source if absent."""
        raise NotImplementedError

    def stem(self, key: str) -> str:
        """The name a key pairs by (file name without extension)."""
        raise NotImplementedError

    def display_path(self, key: str) -> str:
        """What to report as the item's path: the file path, or the LMDB key."""
        raise NotImplementedError

    def describe(self, key: str) -> str:
        """Where ``key`` lives, for error messages (a file path, or ``lmdb_path[key]``)."""
        raise NotImplementedError


class DiskBackend(FileBackend):
    """Image files directly inside one folder (not recursive); keys are the file names."""

    def __init__(self, root: str | Path, option_key: str = "dataroot") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"{option_key}: {self.root} {what}")
        self._keys = sorted(entry.name for entry in os.scandir(self.root)
                            if entry.is_file() and not entry.name.startswith(".")
                            and is_image_file(entry.name))
        if not self._keys:
            raise FileNotFoundError(f"{option_key}: no image files in {self.root}")

    def keys(self) -> List[str]:
        return list(self._keys)

    def get(self, key: str) -> bytes:
        path = self.root / key
        try:
            return path.read_bytes()
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{path}: no such file") from err
        except OSError as err:
            raise OSError(f"{path}: cannot read: {err.strerror or err}") from err

    def stem(self, key: str) -> str:
        return Path(key).stem

    def display_path(self, key: str) -> str:
        return str(self.root / key)

    def describe(self, key: str) -> str:
        return str(self.root / key)


def read_lmdb_meta_info(lmdb_path: Path) -> List[Tuple[str, str, Tuple[int, ...]]]:
    """Parse ``meta_info.txt`` into ``(key, file_name, (h, w, c))`` tuples, in file order."""
    meta = lmdb_path / "meta_info.txt"
    entries = []
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise FileNotFoundError(f"{meta}: cannot read the LMDB's meta_info.txt "
                                f"({err.strerror or err})") from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # "name.png (h,w,c) level"; the name itself may contain spaces.
        try:
            name, rest = line.rsplit(" (", 1)
            shape_text = rest.split(")", 1)[0]
            shape = tuple(int(v) for v in shape_text.split(","))
        except ValueError as err:
            raise ValueError(f"{meta}:{number}: expected 'name.png (h,w,c) compress_level', "
                             f"got {line!r}") from err
        entries.append((Path(name).stem, name, shape))
    return entries


# One environment per LMDB file per process, shared by every backend reading it: py-lmdb
# refuses to open the same files twice in one process. Key: (path, device, inode of data.mdb),
# so an LMDB rebuilt at the same path is a different entry. Value: (pid that opened it, env).
_OPEN_ENVS: Dict[Tuple[str, int, int], Tuple[int, Any]] = {}
_OPEN_ENVS_LOCK = threading.Lock()


class LmdbBackend(FileBackend):
    """A BasicSR-layout LMDB opened read-only (``lock=False, readahead=False``), lazily.

    The environment is opened on the first :meth:`get` in each process. A DataLoader worker
    started by fork that inherits its parent's open handle closes that copy and opens its
    own, since LMDB handles must not be used across fork; spawned workers start clean.
    """

    def __init__(self, root: str | Path, option_key: str = "dataroot") -> None:
        self.root = Path(root).expanduser()
        data_file = self.root / "data.mdb"
        if not data_file.is_file():
            what = "is not an LMDB folder (no data.mdb)" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"{option_key}: {self.root} {what}")
        entries = read_lmdb_meta_info(self.root)
        if not entries:
            raise FileNotFoundError(f"{option_key}: {self.root}/meta_info.txt lists no images")
        self._names: Dict[str, str] = {key: name for key, name, _ in entries}
        self._keys = sorted(self._names)
        stat = data_file.stat()
        self._env_key = (str(self.root.resolve()), stat.st_dev, stat.st_ino)

    def _env(self) -> Any:
        pid = os.getpid()
        entry = _OPEN_ENVS.get(self._env_key)
        if entry is not None and entry[0] == pid:
            return entry[1]
        import lmdb  # imported here so disk-only users never need it loaded

        with _OPEN_ENVS_LOCK:
            entry = _OPEN_ENVS.get(self._env_key)
            if entry is not None and entry[0] == pid:
                return entry[1]
            if entry is not None:  # inherited through fork: drop this process's copy
                entry[1].close()
            env = lmdb.open(str(self.root), readonly=True, lock=False, readahead=False,
                            meminit=False, subdir=True)
            _OPEN_ENVS[self._env_key] = (pid, env)
            return env

    def keys(self) -> List[str]:
        return list(self._keys)

    def get(self, key: str) -> bytes:
        with self._env().begin(write=False, buffers=False) as txn:
            value = txn.get(key.encode("utf-8"))
        if value is None:
            raise KeyError(f"{self.root}: no entry with key {key!r}")
        return bytes(value)

    def stem(self, key: str) -> str:
        return key

    def display_path(self, key: str) -> str:
        return key

    def describe(self, key: str) -> str:
        return f"{self.root}[{key}]"

    def close(self) -> None:
        """Close this process's handle on the LMDB (shared with other backends on it)."""
        with _OPEN_ENVS_LOCK:
            entry = _OPEN_ENVS.pop(self._env_key, None)
            if entry is not None:
                entry[1].close()


BACKENDS: Dict[str, Callable[..., FileBackend]] = {"disk": DiskBackend, "lmdb": LmdbBackend}


def make_file_backend(io_backend: Optional[Dict[str, Any]], root: str | Path,
                      option_key: str) -> FileBackend:
    """Build the backend named by ``io_backend['type']`` for folder/LMDB ``root``.

    ``option_key`` (e.g. ``datasets.val.dataroot_lq``) is named in errors about ``root``.
    """
    backend_type = (io_backend or {}).get("type", "disk")
    if backend_type not in BACKENDS:
        prefix = option_key.rsplit(".", 1)[0] + "." if "." in option_key else ""
        raise ValueError(f"{prefix}io_backend.type: unknown file backend {backend_type!r}; "
                         f"valid types: {', '.join(sorted(BACKENDS))}")
    if root is None:
        raise ValueError(f"{option_key} is required (a folder or an .lmdb path)")
    return BACKENDS[backend_type](root, option_key)


__all__ = ["BACKENDS", "DiskBackend", "FileBackend", "LmdbBackend", "make_file_backend",
           "read_lmdb_meta_info"]
