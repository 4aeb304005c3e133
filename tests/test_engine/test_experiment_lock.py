"""One run per experiment folder: the lock, a second run refused, a killed run leaves no lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from train_test_utils import make_image_folders, tiny_options, write_options

from lptn.engine.cli import train_main
from lptn.engine.experiment_folder import ExperimentBusyError, ExperimentFolder
from lptn.engine.training_state import load_training_state

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    )


def _folder_options(root: Path, name: str = "exp") -> dict:
    exp = root / "experiments" / name
    return {
        "name": name,
        "path": {
            "experiments_root": str(exp),
            "models": str(exp / "models"),
            "training_states": str(exp / "training_states"),
            "log": str(exp),
            "visualization": str(exp / "visualization"),
        },
    }


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in time: {path.read_text()}"
        time.sleep(0.1)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    options = _folder_options(tmp_path)
    folder = ExperimentFolder(options)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, sys, time\n"
            "from lptn.engine.experiment_folder import ExperimentFolder\n"
            "folder = ExperimentFolder(json.loads(sys.argv[1]))\n"
            "folder.acquire(archive_old=False)\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            json.dumps(options),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExperimentBusyError, match=f"process {holder.pid}"):
            folder.check_free()
        with pytest.raises(ExperimentBusyError, match="another training run"):
            folder.acquire(archive_old=True)
        # Refused: nothing was renamed.
        assert [p.name for p in (tmp_path / "experiments").iterdir()] == ["exp"]
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    folder.check_free()
    folder.acquire(archive_old=False)
    assert folder.locked
    folder.release()


def _wait_then_sleep(ready: Any) -> None:
    ready.set()
    time.sleep(60)


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    """DataLoader workers are forked from the training process: once the run releases the
    folder, a worker still alive must not hold the lock."""
    folder = ExperimentFolder(_folder_options(tmp_path))
    folder.acquire(archive_old=False)
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_wait_then_sleep, args=(ready,))
    child.start()
    try:
        assert ready.wait(60)
        folder.release()
        ExperimentFolder(_folder_options(tmp_path)).check_free()
    finally:
        child.terminate()
        child.join(30)


def test_second_run_with_the_same_name_is_refused_while_the_first_is_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="twice", gan=False, total_iter=100000, checkpoint_freq=100000)
    option_file = write_options(opt, tmp_path / "twice.yml")
    with open(tmp_path / "first.txt", "wb") as out:
        first = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "train.py"), "-opt", str(option_file)],
            cwd=tmp_path,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            # The first run holds the lock once it trains.
            _wait_for(tmp_path / "first.txt", "iter 2/", first)
            for extra in ([], ["--auto_resume"]):
                assert train_main(["-opt", str(option_file), *extra]) == 2
                err = capsys.readouterr().err.strip()
                assert err.count("\n") == 0, err
                assert f"another training run (process {first.pid})" in err
                assert str(tmp_path / "experiments" / "twice") in err
            # Nothing was archived or added under the first run's feet.
            assert [p.name for p in (tmp_path / "experiments").iterdir()] == ["twice"]
            assert len(list((tmp_path / "experiments" / "twice").glob("train_twice_*.log"))) == 1
            first.send_signal(signal.SIGTERM)
            rc = first.wait(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
    log = (tmp_path / "first.txt").read_text()
    assert rc == 128 + signal.SIGTERM, log
    states = list((tmp_path / "experiments" / "twice" / "training_states").glob("*.state"))
    assert len(states) == 1, log
    assert load_training_state(states[0])["iter"] >= 2
    # The first run is gone: the name is free again.
    capsys.readouterr()
    assert (
        train_main(
            [
                "-opt",
                str(option_file),
                "--auto_resume",
                "--set",
                f"train.total_iter={load_training_state(states[0])['iter'] + 1}",
            ]
        )
        == 0
    )
