"""logger.wandb: training scalars, validation metrics and panels in an offline W&B run."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from train_test_utils import (
    assert_train_py_fails_before_data,
    make_image_folders,
    parsed,
    tiny_options,
)

from lptn.data.image_io import read_image
from lptn.engine.train_loop import run_training
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))
BLOCK = 32768  # the run file is a LevelDB-style log of 32 KiB blocks
FULL, LAST = 1, 4


def history(run_file: Path) -> List[Dict[str, Any]]:
    """The ``history`` rows (one per logged step) of an offline ``run-*.wandb`` file."""
    from wandb.proto import wandb_internal_pb2

    raw = run_file.read_bytes()
    assert raw[:4] == b":W&B"
    rows, chunk, pos = [], b"", 7
    while pos + 7 <= len(raw):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # block padding
            pos += left
            continue
        chunk += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {
                        item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item
                    }
                )
    return rows


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("wandb", reason="the wandb extra: pip install 'lptn[wandb]'")
    folder = tmp_path / "wandb_dir"
    folder.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(folder))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return folder / "wandb"


def _run(tmp_path: Path, data: Dict[str, Path], total_iter: int, wandb: Dict[str, Any]):
    opt = tiny_options(
        data,
        name="wb",
        unpaired=False,
        gan=False,
        total_iter=total_iter,
        checkpoint_freq=2,
        val=True,
        val_freq=2,
    )
    opt["logger"]["wandb"] = wandb
    outcome = run_training(parsed(opt, tmp_path), CPU, handle_signals=False)
    # The run file is written by wandb's service process; wait until it has written all.
    import wandb as wandb_module

    wandb_module.teardown()
    return outcome


def test_training_logs_to_an_offline_wandb_run(tmp_path: Path, offline_wandb: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    outcome = _run(tmp_path, data, 2, {"project": "lptn-test", "resume_id": None})
    (run_dir,) = offline_wandb.glob("offline-run-*")
    rows = history(next(run_dir.glob("run-*.wandb")))
    by_step: Dict[int, Dict[str, Any]] = {}
    for row in rows:
        by_step.setdefault(row["_step"], {}).update(row)
    assert sorted(by_step) == [1, 2]
    for step in (1, 2):
        assert np.isfinite(by_step[step]["losses/l_g_pix"])
        assert by_step[step]["lr/lr_g"] == pytest.approx(1e-3)
    # The validation mean at iteration 2 is the run's best (the only validation).
    assert by_step[2]["metrics/tiny_val/psnr"] == pytest.approx(outcome.best["value"], abs=1e-9)
    panel_path = by_step[2]["val/tiny_val/img_0/path"]
    panel = read_image(run_dir / "files" / panel_path)
    assert panel.shape == (40, 3 * 40, 3)  # input | output | target

    # resume_id continues that run (BasicSR's schema): the same id, a second run file.
    # offline-run-{time}-{id}, with "-N" appended when two runs start within one second
    run_id = run_dir.name.split("-")[3]
    _run(tmp_path, data, 2, {"project": "lptn-test", "resume_id": run_id})
    assert {p.name.split("-")[3] for p in offline_wandb.glob("offline-run-*")} == {run_id}


def test_missing_wandb_is_named_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    assert_train_py_fails_before_data(
        tmp_path, capsys, ["logger.wandb.project=lptn-test"], "pip install 'lptn[wandb]'"
    )


def test_bad_wandb_block_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_train_py_fails_before_data(
        tmp_path, capsys, ["logger.wandb.project=7"], "logger.wandb.project"
    )
