"""Training never loses work, and never silently: failed starts, auto-resume over damaged
checkpoints, validation data checked at start, interrupted validations, corrupt training
images, a full disk, options changed on resume."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np
import pytest
import torch
from train_test_utils import make_image_folders, parsed, tiny_options, write_options

import lptn.engine.train_loop as train_loop
from lptn.engine.cli import train_main
from lptn.engine.train_loop import NonFiniteLossError, Trainer, run_training
from lptn.engine.training_state import load_training_state
from lptn.platform.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))
REPO_ROOT = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> Dict[str, Tuple[int, int]]:
    """Every path under ``root`` with its size and modification time (ns)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _log_text(exp: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(exp.glob("train_*.log")))


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tuple[Path, Path]:
    """An experiment ``rec`` trained to iteration 4 (states 2 and 4); cwd = ``tmp_path``.
    Returns the option file and the experiment folder."""
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="rec", gan=False, total_iter=4, checkpoint_freq=2)
    option_file = write_options(opt, tmp_path / "rec.yml")
    assert train_main(["-opt", str(option_file)]) == 0
    return option_file, tmp_path / "experiments" / "rec"


def test_failed_start_changes_nothing_and_auto_resume_says_where_it_resumes(
    trained: Tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    option_file, exp = trained
    before = _tree(tmp_path / "experiments")
    capsys.readouterr()
    # An unknown loss type is found after the data is built: still nothing is archived.
    assert train_main(["-opt", str(option_file), "--set", "train.pixel_opt.type=NoSuchLoss"]) == 2
    assert "NoSuchLoss" in capsys.readouterr().err
    assert _tree(tmp_path / "experiments") == before

    assert (
        train_main(["-opt", str(option_file), "--auto_resume", "--set", "train.total_iter=6"]) == 0
    )
    out = capsys.readouterr().out
    assert f"auto-resume: resuming from {exp / 'training_states' / '4.state'} (iteration 4)" in out
    assert load_training_state(exp / "training_states" / "6.state")["iter"] == 6
    assert not list((tmp_path / "experiments").glob("rec_archived_*"))
    # The line is in the experiment's log file too (it was logged before the file existed).
    assert "auto-resume: resuming from" in _log_text(exp)


def test_auto_resume_without_a_state_says_it_starts_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="fresh", gan=False, total_iter=1, checkpoint_freq=1)
    option_file = write_options(opt, tmp_path / "fresh.yml")
    assert train_main(["-opt", str(option_file), "--auto_resume"]) == 0
    out = capsys.readouterr().out
    assert "auto-resume: no complete training state in" in out
    assert "starting a new run from iteration 1" in out


@pytest.mark.parametrize("damaged", ["state", "weights"])
def test_kill_during_save_then_auto_resume_uses_the_last_complete_checkpoint(
    trained: Tuple[Path, Path], capsys: pytest.CaptureFixture, damaged: str
) -> None:
    option_file, exp = trained
    states, models = exp / "training_states", exp / "models"
    # What a kill -9 in the middle of saving iteration 6 leaves, and a newest checkpoint
    # damaged afterwards (a copy cut short, a disk fault).
    (states / ".6.state.k3j2x9.tmp").write_bytes(b"PK\x03\x04 half a zip")
    (models / ".net_g_6.pth.a8f0q1.tmp").write_bytes(b"\x80\x02 half a pickle")
    victim = states / "4.state" if damaged == "state" else models / "net_g_4.pth"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    capsys.readouterr()

    assert (
        train_main(["-opt", str(option_file), "--auto_resume", "--set", "train.total_iter=5"]) == 0
    )
    out = capsys.readouterr().out
    assert f"damaged checkpoint skipped: {victim}" in out
    assert f"resuming from {states / '2.state'} (iteration 2)" in out
    assert "removed" in out and ".6.state.k3j2x9.tmp" in out
    assert not list(states.glob("*.tmp")) and not list(models.glob("*.tmp"))
    assert load_training_state(states / "5.state")["iter"] == 5
    assert f"damaged checkpoint skipped: {victim}" in _log_text(exp)


def _write_val_image(folder: Path, name: str, size: int) -> None:
    img = np.full((size, size, 3), 128, np.uint8)
    cv2.imwrite(str(folder / name), img)


@pytest.mark.parametrize("fault", ["too_small", "corrupt"])
def test_validation_images_are_checked_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, fault: str
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    val = make_image_folders(tmp_path / "val", count=2, seed=3)
    bad = "img_1.png"
    if fault == "too_small":
        # num_high 3 needs 9x9: an 8x8 pair would crash the first validation.
        _write_val_image(val["source"], bad, 8)
        _write_val_image(val["target"], bad, 8)
    else:
        (val["target"] / bad).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    opt = tiny_options(data, name="valchk", gan=False, total_iter=2, val=True, val_freq=2)
    opt["datasets"]["val"]["dataroot_lq"] = str(val["source"])
    opt["datasets"]["val"]["dataroot_gt"] = str(val["target"])
    option_file = write_options(opt, tmp_path / "valchk.yml")
    assert train_main(["-opt", str(option_file)]) == 2
    err = capsys.readouterr().err
    assert bad in err
    if fault == "too_small":
        assert "8x8" in err and "9x9" in err and "num_high=3" in err
    assert not (tmp_path / "experiments").exists()


def test_a_training_crop_below_the_pyramid_minimum_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="crop", gan=False, total_iter=2)
    option_file = write_options(opt, tmp_path / "crop.yml")
    assert train_main(["-opt", str(option_file), "--set", "datasets.train.gt_size=8"]) == 2
    err = capsys.readouterr().err
    assert "datasets.train.gt_size: 8 is smaller than 9" in err and "num_high=3" in err
    assert not (tmp_path / "experiments").exists()


def test_checkpoint_precedes_validation_and_an_interrupted_validation_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="valstop", gan=False, total_iter=2, checkpoint_freq=2, val=True)
    opt["val"]["val_freq"] = 2
    real_validate = train_loop.validate_dataset
    trainer = Trainer(parsed(opt, tmp_path), CPU, handle_signals=False)

    def signal_arrives_during_validation(*args, **kwargs):
        trainer.stop.signum = signal.SIGTERM
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(train_loop, "validate_dataset", signal_arrives_during_validation)
    outcome = trainer.run()
    monkeypatch.undo()
    # The checkpoint of iteration 2 was written before its validation, which did not finish.
    assert outcome.status == "interrupted" and outcome.exit_code == 128 + signal.SIGTERM
    state_file = trainer.states_dir / "2.state"
    assert load_training_state(state_file)["validation_pending"] is True
    assert (trainer.models_dir / "net_g_2.pth").is_file()
    assert not (trainer.models_dir / "net_g_best.pth").exists()

    resumed = Trainer(parsed(opt, tmp_path), CPU, auto_resume=True, handle_signals=False)
    result = resumed.run()
    assert result.status == "finished" and result.iteration == 2
    assert result.best["iter"] == 2 and result.best["metric"] == "psnr"
    assert (trainer.models_dir / "net_g_best.pth").is_file()
    assert sorted(p.name for p in (trainer.visualization_dir / "2").iterdir()) == [
        "img_0.png",
        "img_1.png",
        "img_2.png",
        "img_3.png",
    ]
    state = load_training_state(state_file)
    assert state["validation_pending"] is False and state["best"]["iter"] == 2
    assert "the validation of iteration 2 did not complete" in _log_text(trainer.experiments_root)


def test_a_killed_validation_keeps_the_checkpoint_of_its_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="valkill", gan=False, total_iter=4, checkpoint_freq=2, val=True)
    opt["val"]["val_freq"] = 2

    class Killed(BaseException):
        pass

    def killed(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(train_loop, "validate_dataset", killed)
    with pytest.raises(Killed):
        run_training(parsed(opt, tmp_path), CPU, handle_signals=False)
    monkeypatch.undo()
    states = tmp_path / "experiments" / "valkill" / "training_states"
    assert [p.name for p in states.iterdir()] == ["2.state"]
    assert load_training_state(states / "2.state")["validation_pending"] is True


def test_corrupt_training_image_saves_the_state_and_stops_naming_the_file(
    trained: Tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    option_file, exp = trained
    broken = tmp_path / "data" / "source" / "img_2.png"
    # Damage inside the compressed pixels, header and end intact: the start-up check reads
    # headers only (a file cut short or not a PNG at all is refused before iteration 1).
    data = bytearray(broken.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = bytes(16)
    broken.write_bytes(bytes(data))
    capsys.readouterr()
    # One loader worker: the error crosses a process boundary and must still read well.
    rc = train_main(
        [
            "-opt",
            str(option_file),
            "--auto_resume",
            "--set",
            "train.total_iter=12",
            "datasets.train.num_worker_per_gpu=1",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 2
    err = captured.err.strip()
    assert err.count("\n") == 0 and str(broken) in err and "cannot be decoded" in err
    assert "Traceback" not in err
    log = _log_text(exp)
    assert f"training data: {broken}: cannot be decoded" in log
    # Epochs of 2 batches read every source image: the fault comes within two iterations,
    # and the last completed iteration was saved.
    stopped = max(int(p.stem) for p in (exp / "training_states").glob("*.state"))
    assert stopped in (4, 5)
    assert f"training stopped at iteration {stopped}" in err

    # Once the file is readable again the run continues from there.
    make_image_folders(tmp_path / "data", count=4)
    assert (
        train_main(["-opt", str(option_file), "--auto_resume", "--set", "train.total_iter=7"]) == 0
    )
    assert (
        f"resuming from {exp / 'training_states' / f'{stopped}.state'}" in capsys.readouterr().out
    )


def test_full_disk_during_a_checkpoint_says_so_and_keeps_the_previous_one(
    trained: Tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    option_file, exp = trained
    states, models = exp / "training_states", exp / "models"
    before = (states / "4.state").read_bytes()
    real_save = torch.save

    def disk_fills_at_state_6(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format") and obj.get("iter") == 6:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            f.write(buf.getvalue()[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_fills_at_state_6)
    capsys.readouterr()
    rc = train_main(["-opt", str(option_file), "--auto_resume", "--set", "train.total_iter=8"])
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0, err
    assert f"no space left on device in {states}" in err
    assert f"the previous checkpoint {states / '4.state'} (iteration 4) is intact" in err
    assert "no space left on device" in _log_text(exp)
    # The previous checkpoint is untouched, the partial one is gone, no temp file is left.
    assert (states / "4.state").read_bytes() == before
    assert sorted(p.name for p in states.iterdir()) == ["2.state", "4.state"]
    assert not (models / "net_g_6.pth").exists()
    assert not list(models.glob(".*.tmp")) and not list(states.glob(".*.tmp"))


def test_the_non_finite_advice_works_a_lower_lr_applies_on_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(
        data,
        name="lr",
        gan=False,
        total_iter=20,
        checkpoint_freq=2,
        extra_train={"max_consecutive_nonfinite": 2},
    )
    trainer = Trainer(parsed(opt, tmp_path), CPU, handle_signals=False)
    trainer.prepare()

    def poison(module, inputs, output):
        return output * float("nan") if trainer.iteration >= 3 else None

    trainer.model.net_g.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.run()
    advice = str(info.value)
    assert "Lower the learning rate" in advice
    setting = advice.split("--set ", 1)[1].split(" ", 1)[0]
    assert setting == f"path.resume_state={trainer.states_dir / '2.state'}"

    # As advised: a lower rate in the option file (and a later milestone), resume from there.
    opt["train"]["optim_g"]["lr"] = 4e-4
    opt["train"]["optim_g"]["weight_decay"] = 1e-6
    opt["train"]["scheduler"]["milestones"] = [4]
    opt["train"]["total_iter"] = 6
    option_file = write_options(opt, tmp_path / "lr.yml")
    capsys.readouterr()
    assert train_main(["-opt", str(option_file), "--set", setting]) == 0
    out = capsys.readouterr().out
    assert "train.optim_g.lr changed on resume: 0.001 in the state, 0.0004 in the options" in out
    assert "train.optim_g.weight_decay changed on resume: 0 in the state, 1e-06" in out
    assert "train.scheduler changed on resume" in out
    state = load_training_state(trainer.states_dir / "6.state")["model"]
    assert state["schedulers"]["net_g"]["base_lrs"] == [4e-4]
    group = state["optimizers"]["net_g"]["param_groups"][0]
    # Iteration 6 is past the milestone 4: base * gamma.
    assert group["lr"] == pytest.approx(4e-4 * 0.5) and group["initial_lr"] == 4e-4
    assert group["weight_decay"] == 1e-6


def test_train_main_makes_stdout_line_buffered(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from lptn.engine.cli import train_main\n"
            "rc = train_main(['-opt', 'missing.yml'])\n"
            "print(rc, sys.stdout.line_buffering)\n",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.split() == ["2", "True"], result.stderr


def test_a_real_kill_9_then_auto_resume_over_a_damaged_newest_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A training process really killed with SIGKILL while it saves a checkpoint every
    iteration (so the kill often lands in a save), its newest state then cut short: the resume
    names the damaged file, continues from the previous complete state and leaves no temp
    files behind."""
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="k9", gan=False, total_iter=100000, checkpoint_freq=1)
    option_file = write_options(opt, tmp_path / "k9.yml")
    states = tmp_path / "experiments" / "k9" / "training_states"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train.py"), "-opt", str(option_file)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(states.glob("*.state"))) < 3:
            assert proc.poll() is None, "the training process ended before it was killed"
            assert time.monotonic() < deadline, "no checkpoints in time"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = sorted(int(p.stem) for p in states.glob("*.state"))
    newest = states / f"{saved[-1]}.state"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    previous = saved[-2]
    capsys.readouterr()

    resume_to = previous + 2
    assert (
        train_main(
            ["-opt", str(option_file), "--auto_resume", "--set", f"train.total_iter={resume_to}"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"damaged checkpoint skipped: {newest}" in out
    assert f"resuming from {states / f'{previous}.state'} (iteration {previous})" in out
    models = states.parent / "models"
    assert not list(states.glob("*.tmp")) and not list(models.glob("*.tmp"))
    assert load_training_state(states / f"{resume_to}.state")["iter"] == resume_to
