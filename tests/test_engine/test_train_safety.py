"""Saving never loses the previous checkpoint; non-finite losses; SIGTERM pre-emption."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_test_utils import make_image_folders, parsed, tiny_options, write_options

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.engine.train_loop import NonFiniteLossError, Trainer, run_training
from lptn.engine.training_state import load_training_state, save_training_state
from lptn.platform.checkpoint_io import save_network
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


def test_save_interrupted_mid_write_keeps_the_previous_files(tmp_path: Path, monkeypatch) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    outcome = run_training(
        parsed(
            tiny_options(data, name="ckpt", gan=False, total_iter=2, checkpoint_freq=2), tmp_path
        ),
        CPU,
        handle_signals=False,
    )
    state_path = outcome.last_state
    models = outcome.experiments_root / "models"
    state_bytes = state_path.read_bytes()
    net_bytes = (models / "net_g_2.pth").read_bytes()
    state = load_training_state(state_path)

    real_save = torch.save

    def torch_save_then_disk_full(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])  # part of the file reaches disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", torch_save_then_disk_full)
    state["epoch"] = 99  # a different state written over the same name
    with pytest.raises(OSError, match="No space left"):
        save_training_state(state, state_path.parent)
    net = torch.nn.Conv2d(3, 3, 1)
    with pytest.raises(OSError, match="No space left"):
        save_network(net, models / "net_g_2.pth")
    monkeypatch.undo()

    assert state_path.read_bytes() == state_bytes
    assert (models / "net_g_2.pth").read_bytes() == net_bytes
    previous = load_training_state(state_path)
    assert previous["iter"] == 2 and previous["epoch"] != 99
    leftovers = [
        p.name
        for p in list(state_path.parent.iterdir()) + list(models.iterdir())
        if p.name.endswith(".tmp")
    ]
    assert leftovers == []


def test_non_finite_losses_skip_then_stop_keeping_the_last_good_checkpoint(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    opt = parsed(
        tiny_options(
            data,
            name="nan",
            total_iter=20,
            checkpoint_freq=2,
            extra_train={"max_consecutive_nonfinite": 3},
        ),
        tmp_path,
    )
    trainer = Trainer(opt, CPU, handle_signals=False)
    trainer.prepare()

    def poison(module, inputs, output):
        # From iteration 3 on the generator's output is NaN (e.g. a broken input batch).
        return output * float("nan") if trainer.iteration >= 3 else None

    trainer.model.net_g.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match=r"3 consecutive iterations.*2\.state"):
        trainer.run()
    assert trainer.iteration == 5
    log_text = next(trainer.log_dir.glob("train_nan_*.log")).read_text()
    assert log_text.count("non-finite loss (") == 3
    assert "ERROR: training stopped at iteration 5" in log_text
    assert "skipped the update of net_g, net_d (3/3 in a row)" in log_text
    models = trainer.models_dir
    # Iteration 4 fell inside the streak: no checkpoint of it; the one of iteration 2 loads
    # and equals the current weights, since every later update was skipped.
    assert not (models / "net_g_4.pth").exists()
    assert load_training_state(trainer.states_dir / "2.state")["iter"] == 2
    for name, net in trainer.model.networks().items():
        saved = _weights(models / f"{name}_2.pth")
        assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    fresh = build_network(opt["network_g"])
    load_network_weights(fresh, models / "net_g_2.pth", strict=True)


def test_sigterm_saves_a_resumable_state(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="preempt", gan=False, total_iter=100000, checkpoint_freq=100000)
    option_file = write_options(opt, tmp_path / "preempt.yml")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    )
    with open(tmp_path / "out.txt", "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "train.py"),
                "-opt",
                str(option_file),
                "--device",
                "cpu",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "iter 3/" not in (tmp_path / "out.txt").read_text(errors="replace"):
                assert proc.poll() is None, (tmp_path / "out.txt").read_text()
                assert time.monotonic() < deadline, "training did not start"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    log = (tmp_path / "out.txt").read_text()
    assert rc == 128 + signal.SIGTERM, log
    assert "received SIGTERM" in log
    states = list((tmp_path / "experiments" / "preempt" / "training_states").glob("*.state"))
    assert len(states) == 1, log
    stopped_at = load_training_state(states[0])["iter"]
    assert stopped_at >= 3
    assert (tmp_path / "experiments" / "preempt" / "models" / f"net_g_{stopped_at}.pth").is_file()

    # The state resumes: two more iterations in-process.
    opt["train"]["total_iter"] = stopped_at + 2
    resumed = run_training(parsed(opt, tmp_path), CPU, auto_resume=True, handle_signals=False)
    assert resumed.status == "finished" and resumed.iteration == stopped_at + 2
