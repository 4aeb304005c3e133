"""Console and file logging for the ``lptn`` logger (rank 0 only writes files)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

LOGGER_NAME = "lptn"
_FORMAT = "%(asctime)s %(levelname)s: %(message)s"


def setup_logger(
    log_file: Optional[str | Path] = None, rank: int = 0, level: int = logging.INFO
) -> logging.Logger:
    """Configure the ``lptn`` logger: console on every rank (warnings only off rank 0), plus
    ``log_file`` on rank 0. Calling it again replaces the handlers."""
    log = logging.getLogger(LOGGER_NAME)
    for handler in list(log.handlers):
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
        log.addHandler(file_handler)
    return log


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
