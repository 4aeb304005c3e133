"""The one atomic file write of lptn: checkpoints, reports, images, photos and videos.

The data goes to a new temporary file in the target's folder, which is fsynced and renamed
over the target (and, on POSIX, the folder fsynced so the rename itself survives a power
cut). A crash, a kill or a full disk therefore never leaves a truncated file under the final
name, the previous file stays readable, and a failed write removes its temporary file. New
files get the permissions the umask gives (``0o666`` minus the umask), as ``open`` would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator

#: the end of every temporary name (``.{name}.{pid}.{random}.tmp``): what a leftover of a
#: killed write looks like (see :func:`lptn.engine.checkpointer.temp_files`)
TEMP_SUFFIX = ".tmp"

# Folders on some file systems cannot be fsynced (or opened for it); the rename is done then.
_FOLDER_SYNC_UNSUPPORTED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


class AtomicFile:
    """A new temporary file beside ``path``, open for binary writing as :attr:`file`.

    :meth:`commit` makes it ``path``; :meth:`discard` deletes it and leaves ``path`` as it
    was. ``extension`` is appended to the temporary name for writers that choose the format
    by the name (a video muxer): ``.{name}.{pid}.{random}.tmp{extension}``. Parent folders
    are created.
    """

    def __init__(self, path: str | Path, extension: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        name = f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}{extension}"
        self.temp_path = self.path.parent / name
        # os.open with 0o666 keeps the umask's permissions (mkstemp would force 0600, and a
        # group sharing an experiment folder could not read its checkpoints).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        self.file: BinaryIO = os.fdopen(os.open(self.temp_path, flags, 0o666), "wb")

    def commit(self) -> None:
        """Flush and fsync the file, rename it to :attr:`path`, fsync the folder.

        Raises:
            OSError: as the system gives it (``filename`` set to :attr:`path` when the error
                names no file); the temporary file is removed and ``path`` is untouched.
        """
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.temp_path, self.path)
        except BaseException as err:
            self.discard()
            _name_target(err, self.path)
            raise
        _fsync_folder(self.path.parent)

    def discard(self) -> None:
        """Close and delete the temporary file (safe to call more than once)."""
        with contextlib.suppress(OSError):  # a full disk fails the close's flush again
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.temp_path.unlink()


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to stream bytes into, as the ``with`` block's target; ``path`` appears,
    whole, when the block ends without an error, and is untouched when it raises."""
    target = AtomicFile(path)
    try:
        yield target.file
    except BaseException as err:
        target.discard()
        _name_target(err, target.path)
        raise
    target.commit()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically, line ends as they are in ``text``."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _name_target(err: BaseException, path: Path) -> None:
    # A failed write or fsync names no file; the caller's message needs the target.
    if isinstance(err, OSError) and err.filename is None:
        err.filename = str(path)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder as a file; NTFS logs renames
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as err:
        if err.errno in _FOLDER_SYNC_UNSUPPORTED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in _FOLDER_SYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)
