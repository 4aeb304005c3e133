"""A real full disk during training: train.py on a 5 MiB tmpfs says so in one line, exits 2,
keeps the last good checkpoint, and resumes from it once there is space again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from train_test_utils import make_image_folders, tiny_options, write_options

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.engine.checkpointer import check_checkpoint, find_resume_point
from lptn.engine.training_state import list_states, load_training_state

REPO_ROOT = Path(__file__).resolve().parents[2]


def _train_py(option_file: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    )
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "-opt", str(option_file), *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_py_on_a_full_tmpfs_exits_2_with_one_line_and_an_intact_checkpoint(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    data = make_image_folders(tmp_path / "data", count=4)
    # A checkpoint of the tiny generator with its Adam state is about 2.2 MB: the third
    # one does not fit in 5 MiB.
    opt = tiny_options(data, name="full", gan=False, total_iter=12, checkpoint_freq=2)
    exp = small_tmpfs / "full"
    opt["path"]["experiments_root"] = str(exp)
    option_file = write_options(opt, tmp_path / "full.yml")

    done = _train_py(option_file, tmp_path, "--device", "cpu")

    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith("error: no space left on device in "), line
    assert f"in {exp}" in line and "Traceback" not in done.stderr
    log_text = "\n".join(p.read_text() for p in exp.glob("train_full_*.log"))
    assert line.removeprefix("error: ") in log_text
    # The newest checkpoint left is complete and loads; nothing half-written is left.
    point = find_resume_point(exp / "training_states")
    assert point is not None and point.iteration < 12
    assert f"the previous checkpoint {point.path} (iteration {point.iteration}) is intact" in line
    assert [p.name for p in list_states(exp / "training_states")][0] == point.path.name
    check_checkpoint(point.path)
    net = build_network(dict(opt["network_g"]))
    load_network_weights(net, exp / "models" / f"net_g_{point.iteration}.pth", strict=True)
    assert not list(exp.rglob(".*.tmp"))
    weights = {p.name for p in (exp / "models").glob("net_g_*.pth")}
    assert weights == {f"net_g_{int(p.stem)}.pth" for p in list_states(exp / "training_states")}
    assert not (tmp_path / "experiments").exists()

    # Space freed: --auto_resume continues from that checkpoint to the end.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
    resumed = _train_py(option_file, tmp_path, "--device", "cpu", "--auto_resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from {point.path} (iteration {point.iteration})" in resumed.stdout
    assert load_training_state(exp / "training_states" / "12.state")["iter"] == 12


def test_a_full_disk_while_saving_validation_images_keeps_the_checkpoint(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    # Checkpoints on a disk with room, validation images on the full tmpfs.
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_options(
        data, name="images", gan=False, total_iter=2, checkpoint_freq=2, val=True, val_freq=2
    )
    vis = small_tmpfs / "visualization"
    opt["path"]["visualization"] = str(vis)
    option_file = write_options(opt, tmp_path / "images.yml")
    with open(small_tmpfs / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass

    done = _train_py(option_file, tmp_path, "--device", "cpu")

    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no space left on device"), lines
    assert str(vis / "2") in lines[0]
    exp = tmp_path / "experiments" / "images"
    state = exp / "training_states" / "2.state"
    assert f"training stopped at iteration 2; the last checkpoint {state} is intact" in lines[0]
    log_text = "\n".join(p.read_text() for p in exp.glob("train_images_*.log"))
    assert lines[0].removeprefix("error: ") in log_text
    check_checkpoint(state)
