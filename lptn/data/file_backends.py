"""Where images come from: a folder on disk, an LMDB file (BasicSR layout), or memory.

A backend lists its keys (``keys()``), returns encoded bytes for a key (``get(key)``), the
decoded ``HxWx3`` array (``read_image(key)``, what the datasets call; upright, sRGB, bit depth
kept: :func:`lptn.data.image_io.read_image`) and its upright size from the header alone
(``probe(key)``, what the start-up check calls).

``io_backend.type: memory`` (:class:`MemoryBackend`) decodes every image of a folder or LMDB
once, when the dataset is built, into one uint8 buffer in shared memory; DataLoader workers
(forked or spawned) read views of that same buffer, so a training epoch decodes nothing and
the images are held once per process however many workers there are.

LMDB layout (as BasicSR writes it): a folder ``X.lmdb`` holding ``data.mdb``/``lock.mdb`` and
``meta_info.txt`` with one ``name.png (h,w,c) compress_level`` line per image; the LMDB key is
the name without its extension and the value the encoded PNG.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from lptn.data.image_io import ImageReadError, decode_image, is_image_file, read_image
from lptn.data.image_probe import probe_bytes, probe_file
from lptn.platform.option_schema import IO_BACKEND, fill_defaults


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

    def read_image(self, key: str) -> np.ndarray:
        """``HxWx3`` RGB uint8/uint16 image stored under ``key`` (decoded now)."""
        return decode_image(self.get(key), self.describe(key))

    def probe(self, key: str) -> Tuple[int, int]:
        """``(height, width)`` of ``key`` as :meth:`read_image` returns it, from the header
        where the format allows; ``ImageReadError`` naming it when it is not a readable photo."""
        return probe_bytes(self.get(key), self.describe(key))


class DiskBackend(FileBackend):
    """Image files directly inside one folder (not recursive); keys are the file names."""

    def __init__(self, root: str | Path, option_key: str = "dataroot") -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"{option_key}: {self.root} {what}")
        self._keys = sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_file() and not entry.name.startswith(".") and is_image_file(entry.name)
        )
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

    def read_image(self, key: str) -> np.ndarray:
        # through the path, so that formats read from a file (RAW) work as in lptn-enhance
        return read_image(self.root / key)

    def probe(self, key: str) -> Tuple[int, int]:
        return probe_file(self.root / key)

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
        raise FileNotFoundError(
            f"{meta}: cannot read the LMDB's meta_info.txt ({err.strerror or err})"
        ) from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        # "name.png (h,w,c) level"; the name itself may contain spaces.
        try:
            name, rest = line.rsplit(" (", 1)
            shape_text = rest.split(")", 1)[0]
            shape = tuple(int(v) for v in shape_text.split(","))
        except ValueError as err:
            raise ValueError(
                f"{meta}:{number}: expected 'name.png (h,w,c) compress_level', got {line!r}"
            ) from err
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
            env = lmdb.open(
                str(self.root),
                readonly=True,
                lock=False,
                readahead=False,
                meminit=False,
                subdir=True,
            )
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


SHM_DIR = "/dev/shm"


def shared_memory_free_bytes() -> Optional[int]:
    """Free bytes of the shared-memory file system (None where there is none to check)."""
    try:
        return shutil.disk_usage(SHM_DIR).free
    except OSError:
        return None


class MemoryBackend(FileBackend):
    """Every image of a folder or LMDB decoded once into one shared uint8 buffer.

    Args:
        root: the folder or ``.lmdb`` path.
        option_key: named in errors (``datasets.train.dataroot_lq``).
        source: ``disk``, ``lmdb`` or ``auto`` (an LMDB when ``root/data.mdb`` exists).
        decode_threads: threads decoding at start-up (default: up to 8, one per CPU core).

    :attr:`buffer` is a 1-D uint8 ``torch.Tensor`` moved to shared memory
    (``share_memory_()``): a worker started by fork maps the same pages, and one started by
    spawn receives a handle to them (torch's tensor pickling), never a copy.
    :meth:`read_image` returns a read-only numpy view into it. Keys, names and paths are those
    of the source backend.

    Memory: the decoded images (FiveK 480p: 2 x 2,250 images, about 5 GB) plus, while
    decoding, the largest image once more; on Linux the buffer lives in ``/dev/shm``, which
    must have room for it (in Docker: ``--shm-size`` or ``--ipc=host``).
    """

    def __init__(
        self,
        root: str | Path,
        option_key: str = "dataroot",
        source: str = "auto",
        decode_threads: Optional[int] = None,
    ) -> None:
        root = Path(root).expanduser()
        if source == "auto":
            source = "lmdb" if (root / "data.mdb").is_file() else "disk"
        if source not in ("disk", "lmdb"):
            prefix = option_key.rsplit(".", 1)[0] + "." if "." in option_key else ""
            raise ValueError(
                f"{prefix}io_backend.source: must be disk, lmdb or auto, got {source!r}"
            )
        self.source: FileBackend = BACKENDS[source](root, option_key)
        self.root = self.source.root
        self._keys = self.source.keys()
        start = time.perf_counter()
        threads = decode_threads or min(8, os.cpu_count() or 1)

        def decode(key: str) -> Any:
            try:
                return self.source.read_image(key)
            except (OSError, ValueError) as err:  # ImageReadError is an OSError
                return str(err)

        # Pillow and cv2 decode without the GIL, so threads scale
        with ThreadPoolExecutor(max_workers=threads) as pool:
            images: List[Any] = list(pool.map(decode, self._keys))
        failed = [img for img in images if isinstance(img, str)]
        if failed:  # every bad file at once, not one per restart
            raise ImageReadError(
                f"{option_key}: io_backend memory cannot decode {len(failed)} of "
                f"{len(images)} images:\n" + "\n".join(f"  {line}" for line in failed)
            )
        total = sum(int(img.nbytes) for img in images if img is not None)  # none is None yet
        free = shared_memory_free_bytes()
        if free is not None and total > free:
            raise MemoryError(
                f"{option_key}: io_backend memory needs {total / 2**30:.2f} GiB of "
                f"shared memory for {root} but {SHM_DIR} has "
                f"{free / 2**30:.2f} GiB free (Docker: --shm-size or --ipc=host; "
                f"or use io_backend.type lmdb)"
            )
        self.buffer = torch.empty(total, dtype=torch.uint8).share_memory_()
        flat = self.buffer.numpy()
        self._index: Dict[str, Tuple[int, Tuple[int, ...], str]] = {}
        offset = 0
        for i, key in enumerate(self._keys):
            img = images[i]
            images[i] = None  # drop each decoded copy as soon as it is in the buffer
            assert img is not None
            flat[offset : offset + img.nbytes] = (
                np.ascontiguousarray(img).reshape(-1).view(np.uint8)
            )
            self._index[key] = (offset, tuple(img.shape), img.dtype.str)
            offset += img.nbytes
        self.decode_seconds = time.perf_counter() - start

    @property
    def nbytes(self) -> int:
        """Size of the decoded images in the shared buffer."""
        return int(self.buffer.numel())

    def keys(self) -> List[str]:
        return list(self._keys)

    def get(self, key: str) -> bytes:
        """The encoded bytes, read again from the source (the buffer holds decoded pixels)."""
        return self.source.get(key)

    def read_image(self, key: str) -> np.ndarray:
        try:
            offset, shape, dtype = self._index[key]
        except KeyError:
            raise KeyError(f"{self.root}: no image with key {key!r}") from None
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        view = self.buffer.numpy()[offset : offset + size].view(dtype).reshape(shape)
        view.flags.writeable = False  # a write would change the image for every worker
        return view

    def probe(self, key: str) -> Tuple[int, int]:
        """The size of the decoded image in the buffer (no reading at all)."""
        try:
            shape = self._index[key][1]
        except KeyError:
            raise KeyError(f"{self.root}: no image with key {key!r}") from None
        return int(shape[0]), int(shape[1])

    def read_tensor(self, key: str) -> Optional[torch.Tensor]:
        """An ``HxWx3`` uint8 tensor viewing the shared buffer (no copy: it crosses from a
        DataLoader worker to the main process as a handle); None for 16-bit images."""
        offset, shape, dtype = self._index[key]
        if np.dtype(dtype) != np.uint8:
            return None
        return self.buffer[offset : offset + int(np.prod(shape))].view(shape)

    def stem(self, key: str) -> str:
        return self.source.stem(key)

    def display_path(self, key: str) -> str:
        return self.source.display_path(key)

    def describe(self, key: str) -> str:
        return self.source.describe(key)


BACKENDS: Dict[str, Callable[..., FileBackend]] = {
    "disk": DiskBackend,
    "lmdb": LmdbBackend,
    "memory": MemoryBackend,
}


def make_file_backend(
    io_backend: Optional[Dict[str, Any]], root: Optional[str | Path], option_key: str
) -> FileBackend:
    """Build the backend named by ``io_backend['type']`` for folder/LMDB ``root``.

    ``option_key`` (e.g. ``datasets.val.dataroot_lq``) is named in errors about ``root``.
    ``memory`` also reads ``io_backend.source`` (``auto`` | ``disk`` | ``lmdb``) and
    ``io_backend.decode_threads``.
    """
    prefix = option_key.rsplit(".", 1)[0] + "." if "." in option_key else ""
    io_backend = fill_defaults(IO_BACKEND, io_backend, f"{prefix}io_backend")
    backend_type = io_backend["type"]
    if root is None:
        raise ValueError(f"{option_key} is required (a folder or an .lmdb path)")
    if backend_type == "memory":
        return MemoryBackend(
            root,
            option_key,
            source=io_backend["source"],
            decode_threads=io_backend["decode_threads"],
        )
    return BACKENDS[backend_type](root, option_key)


__all__ = [
    "BACKENDS",
    "DiskBackend",
    "FileBackend",
    "LmdbBackend",
    "MemoryBackend",
    "make_file_backend",
    "read_lmdb_meta_info",
    "shared_memory_free_bytes",
]
