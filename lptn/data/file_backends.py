"""Where image bytes come from: a folder on disk or an LMDB file (BasicSR layout).

A backend lists its keys (``keys()``) and returns encoded bytes for a key (``get(key)``);
datasets decode them with :func:`lptn.data.image_io.decode_image`.

LMDB layout (as BasicSR writes it): a folder ``X.lmdb`` holding ``data.mdb``/``lock.mdb`` and
``meta_info.txt`` with one ``name.png (h,w,c) compress_level`` line per image; the LMDB key is
the name without its extension and the value the encoded PNG.
"""
from __future__ import annotations

import os
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
        self.root = Path(root)
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


class LmdbBackend(FileBackend):
    """A BasicSR-layout LMDB opened read-only, lazily, once per process.

    The environment is opened on first :meth:`get` in each process (and dropped when
    pickled), so DataLoader workers started by fork or spawn each get their own handle.
    """

    def __init__(self, root: str | Path, option_key: str = "dataroot") -> None:
        self.root = Path(root)
        if not (self.root / "data.mdb").is_file():
            what = "is not an LMDB folder (no data.mdb)" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"{option_key}: {self.root} {what}")
        entries = read_lmdb_meta_info(self.root)
        if not entries:
            raise FileNotFoundError(f"{option_key}: {self.root}/meta_info.txt lists no images")
        self._names: Dict[str, str] = {key: name for key, name, _ in entries}
        self._keys = sorted(self._names)
        self._env: Any = None
        self._pid: Optional[int] = None

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_env"] = None
        state["_pid"] = None
        return state

    def _open(self) -> Any:
        if self._env is None or self._pid != os.getpid():
            import lmdb  # imported here so disk-only users never need it loaded

            self._env = lmdb.open(str(self.root), readonly=True, lock=False, readahead=False,
                                  meminit=False, subdir=True)
            self._pid = os.getpid()
        return self._env

    def keys(self) -> List[str]:
        return list(self._keys)

    def get(self, key: str) -> bytes:
        with self._open().begin(write=False) as txn:
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
        if self._env is not None:
            self._env.close()
            self._env = None


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
