"""Start-up records of the ``lptn`` logger: kept until the log file exists, then written
there first, in order; dropped when no log file comes; not written off rank 0."""

from __future__ import annotations

from logging.handlers import MemoryHandler
from pathlib import Path
from typing import Iterator

import pytest

from lptn.platform.logger import (
    drop_startup_records,
    get_logger,
    keep_startup_records,
    setup_logger,
)


@pytest.fixture(autouse=True)
def fresh_lptn_logger() -> Iterator[None]:
    log = get_logger()
    saved = (list(log.handlers), log.level, log.propagate)
    for handler in saved[0]:
        log.removeHandler(handler)
    yield
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    for handler in saved[0]:
        log.addHandler(handler)
    log.setLevel(saved[1])
    log.propagate = saved[2]


def _messages(path: Path) -> list:
    return [line.split(": ", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]


def test_records_before_the_log_file_are_written_there_first(tmp_path: Path) -> None:
    assert keep_startup_records() is keep_startup_records()  # one keeper, however often asked
    setup_logger()  # the console of an early start: records are still kept
    log = get_logger()
    log.warning("datasets.train.scale: ignored")
    log.error("a start-up check failed for one image")  # an error does not flush them early
    log.info("building the data")
    setup_logger(tmp_path / "train.log")
    log.info("iteration 1")
    assert _messages(tmp_path / "train.log") == [
        "datasets.train.scale: ignored",
        "a start-up check failed for one image",
        "building the data",
        "iteration 1",
    ]
    setup_logger(tmp_path / "second.log")  # records go to the first log file only
    assert _messages(tmp_path / "second.log") == []


def test_dropped_records_go_nowhere_and_rank_1_writes_no_file(tmp_path: Path) -> None:
    keep_startup_records()
    get_logger().warning("before a run that stopped")
    drop_startup_records()
    keep_startup_records()
    get_logger().warning("kept for the log")
    setup_logger(tmp_path / "rank1.log", rank=1)
    assert not (tmp_path / "rank1.log").exists()
    setup_logger(tmp_path / "rank0.log")
    assert _messages(tmp_path / "rank0.log") == []  # the keeper went with the rank-1 setup
    assert not [h for h in get_logger().handlers if isinstance(h, MemoryHandler)]
