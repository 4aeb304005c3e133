"""Console and file logging for the ``lptn`` logger (rank 0 only writes files).

What is logged before the log file exists (option warnings while the file is parsed, the
start-up checks of a training run) can be kept (:func:`keep_startup_records`) and is then
written first into the log file when :func:`setup_logger` opens it, so the log tells the
whole story of the run.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Optional

LOGGER_NAME = "lptn"
_FORMAT = "%(asctime)s %(levelname)s: %(message)s"


# Names the MemoryHandler that keeps the start-up records, so that it is found again.
_STARTUP_HANDLER = "lptn start-up records"


def _startup_handler(log: logging.Logger) -> Optional[MemoryHandler]:
    for handler in log.handlers:
        if isinstance(handler, MemoryHandler) and handler.get_name() == _STARTUP_HANDLER:
            return handler
    return None


def keep_startup_records() -> MemoryHandler:
    """Keep what the ``lptn`` logger records from now on until :func:`setup_logger` opens a
    log file (which writes it there first) or :func:`drop_startup_records`; the handler
    already keeping them, if any."""
    log = get_logger()
    handler = _startup_handler(log)
    if handler is None:
        # Nothing flushes by itself (no capacity or level reached): setup_logger sets the
        # log file as the target and flushes; dropping or closing the handler loses them.
        handler = MemoryHandler(sys.maxsize, flushLevel=logging.CRITICAL + 1, flushOnClose=False)
        handler.set_name(_STARTUP_HANDLER)
        log.addHandler(handler)
    return handler


def drop_startup_records() -> None:
    """Stop keeping start-up records (a run that ends before it has a log file, or a
    process that writes none)."""
    log = get_logger()
    handler = _startup_handler(log)
    if handler is not None:
        log.removeHandler(handler)
        handler.close()


def setup_logger(
    log_file: Optional[str | Path] = None, rank: int = 0, level: int = logging.INFO
) -> logging.Logger:
    """Configure the ``lptn`` logger: console on every rank (warnings only off rank 0), plus
    ``log_file`` on rank 0, which first receives the start-up records kept so far (see
    :func:`keep_startup_records`). Calling it again replaces the handlers; start-up records
    are kept until a log file is given."""
    log = logging.getLogger(LOGGER_NAME)
    startup = _startup_handler(log)
    for handler in list(log.handlers):
        if handler is not startup:
            log.removeHandler(handler)
            handler.close()
    log.setLevel(level if rank == 0 else logging.WARNING)
    log.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    log.addHandler(console)
    if log_file is not None and rank == 0:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        if startup is not None:
            startup.setTarget(file_handler)
            startup.flush()
        log.addHandler(file_handler)
    if log_file is not None:
        drop_startup_records()
    return log


def get_logger() -> logging.Logger:
    """The project's logger (``LOGGER_NAME``), as set up by the entry point."""
    return logging.getLogger(LOGGER_NAME)
