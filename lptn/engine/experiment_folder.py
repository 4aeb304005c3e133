"""The experiment folder of a training run: its lock, archiving an old one, creating it.

One run at a time per experiment name: a run holds an exclusive ``fcntl.flock`` on
``experiments/{name}/.lock`` from the moment it starts writing until it ends. The kernel drops
the lock when the process dies (``kill -9`` included), so a killed run never leaves a stale
lock behind; the file itself stays and means nothing when nobody holds it. A second run with
the same name finds the lock held and is refused (:class:`ExperimentBusyError`) before it
renames or writes anything. Only rank 0 of a distributed run takes the lock.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import itertools
import os
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Set, Tuple

LOCK_NAME = ".lock"

# Lock files held by this process. A forked child (a DataLoader worker) shares the open file
# and with it the flock, which would outlive this process's release; children close them.
_HELD: Set[IO[Any]] = set()


def _close_held_in_child() -> None:
    for fh in list(_HELD):
        try:
            fh.close()
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


class ExperimentBusyError(RuntimeError):
    """Another live process trains in this experiment folder; names the folder and its pid."""


def timestamp() -> str:
    """The local time as ``YYYYmmdd_HHMMSS``, for log and archive names."""
    return datetime.datetime.now().strftime("%Y%m%d_%H%M%S")


def archive_existing(path: str | Path) -> Optional[Path]:
    """Rename an existing ``path`` to ``{path}_archived_{YYYYmmdd_HHMMSS}``; returns the new
    name (None when ``path`` did not exist)."""
    path = Path(path)
    if not path.exists():
        return None
    stamp = timestamp()
    target = path.with_name(f"{path.name}_archived_{stamp}")
    for n in itertools.count(1):
        if not target.exists():
            break
        target = path.with_name(f"{path.name}_archived_{stamp}_{n}")
    path.rename(target)
    return target


def tb_log_dir(opt: Dict[str, Any]) -> Path:
    """``path.tb_logger`` or ``tb_logger/{name}`` beside the ``experiments`` folder."""
    explicit = opt["path"].get("tb_logger")
    if explicit:
        return Path(explicit)
    return Path(opt["path"]["experiments_root"]).parent.parent / "tb_logger" / opt["name"]


def _holder(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text(encoding="ascii").strip()
    except OSError:
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


def _busy(root: Path, lock_file: Path) -> ExperimentBusyError:
    return ExperimentBusyError(
        f"{root}: another training run{_holder(lock_file)} is using this experiment folder; "
        "wait for it to finish, stop it, or choose another name"
    )


def _try_flock(fh: IO[Any]) -> bool:
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


class ExperimentFolder:
    """``experiments/{name}`` (and its sub-folders) of one training run.

    Args:
        opt: the parsed training options (``path.experiments_root``, ``models``,
            ``training_states``, ``log``, ``visualization``; ``name``).
        is_main: rank 0 (the only process that locks, archives and creates).
    """

    def __init__(self, opt: Dict[str, Any], is_main: bool = True) -> None:
        paths = opt["path"]
        self.root = Path(paths["experiments_root"])
        self.models_dir = Path(paths["models"])
        self.states_dir = Path(paths["training_states"])
        self.visualization_dir = Path(paths["visualization"])
        self.log_dir = Path(paths["log"])
        self.tb_dir = tb_log_dir(opt)
        self.is_main = is_main
        self._lock: Optional[IO[Any]] = None

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def locked(self) -> bool:
        return self._lock is not None

    def check_free(self) -> None:
        """Raise :class:`ExperimentBusyError` when a live run holds the lock; creates nothing
        (a cheap early check, so a refused run does not first build its data and networks)."""
        if not self.is_main or not self.lock_file.is_file():
            return
        with open(self.lock_file, "rb") as fh:
            if not _try_flock(fh):
                raise _busy(self.root, self.lock_file)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _lock_current(self) -> IO[Any]:
        """Lock ``root/.lock`` (created when missing); the file must still be the one at that
        path once locked, since another run may have renamed the folder meanwhile."""
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            fh = open(self.lock_file, "a+b")
            if not _try_flock(fh):
                fh.close()
                raise _busy(self.root, self.lock_file)
            try:
                same = os.stat(self.lock_file).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fh
            fh.close()
            self.root.mkdir(parents=True, exist_ok=True)
        raise _busy(self.root, self.lock_file)

    def acquire(self, *, archive_old: bool) -> List[Tuple[Path, Path]]:
        """Lock the folder (rank 0), archive the old folders when ``archive_old`` (a new run),
        create the sub-folders. Returns the ``(old, archived)`` renames. Raises
        :class:`ExperimentBusyError` when another live run holds the lock; nothing is renamed
        then."""
        if not self.is_main:
            return []
        archived: List[Tuple[Path, Path]] = []
        fh = self._lock_current()
        if archive_old and any(p.name != LOCK_NAME for p in self.root.iterdir()):
            # Renamed while locked, so no other run can be writing into it.
            for folder in (self.root, self.tb_dir):
                target = archive_existing(folder)
                if target is not None:
                    archived.append((folder, target))
            # The new folder is locked before the archived one is let go.
            fresh = self._lock_current()
            fh.close()
            fh = fresh
        elif archive_old:
            target = archive_existing(self.tb_dir)
            if target is not None:
                archived.append((self.tb_dir, target))
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n".encode("ascii"))
        fh.flush()
        self._lock = fh
        _HELD.add(fh)
        for folder in (self.root, self.models_dir, self.states_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return archived

    def release(self) -> None:
        """Drop the lock (also dropped by the kernel when the process ends)."""
        if self._lock is not None:
            _HELD.discard(self._lock)
            self._lock.close()
            self._lock = None


__all__ = [
    "ExperimentBusyError",
    "ExperimentFolder",
    "LOCK_NAME",
    "archive_existing",
    "tb_log_dir",
    "timestamp",
]
