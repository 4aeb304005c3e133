"""``train.py`` / ``lptn-train``: experiment folder, archive on rerun, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from train_test_utils import make_image_folders, tiny_options, write_options

from lptn.engine.cli import train_main
from lptn.engine.train_loop import archive_existing, data_parallel_gpus
from lptn.platform.amp_backend import amp_config
from lptn.platform.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def option_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # experiments/ and tb_logger/ go under the working directory
    data = make_image_folders(tmp_path / "data", count=4)
    opt = tiny_options(data, name="cli", gan=False, total_iter=2, checkpoint_freq=2)
    opt["logger"]["use_tb_logger"] = True
    return write_options(opt, tmp_path / "cli.yml")


def test_rerun_archives_the_previous_experiment(option_file: Path, tmp_path: Path) -> None:
    assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0
    exp = tmp_path / "experiments" / "cli"
    first_log = next(exp.glob("train_cli_*.log")).name
    assert {p.name for p in (exp / "models").iterdir()} == {"net_g_2.pth", "net_g_latest.pth"}
    assert [p.name for p in (exp / "training_states").iterdir()] == ["2.state"]
    copy = yaml.safe_load(next(exp.glob("train_cli_*.yml")).read_text())
    assert copy["train"]["total_iter"] == 2 and copy["manual_seed"] == 7
    assert any((tmp_path / "tb_logger" / "cli").iterdir())

    # The same name again: the old folders are kept under a time-stamped name.
    assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0
    archived = list((tmp_path / "experiments").glob("cli_archived_*"))
    assert len(archived) == 1 and (archived[0] / first_log).is_file()
    assert len(list((tmp_path / "tb_logger").glob("cli_archived_*"))) == 1
    assert [p.name for p in (exp / "training_states").iterdir()] == ["2.state"]

    # --auto_resume with a longer run continues in place (no new archive).
    assert (
        train_main(["-opt", str(option_file), "--auto_resume", "--set", "train.total_iter=4"]) == 0
    )
    assert len(list((tmp_path / "experiments").glob("cli_archived_*"))) == 1
    assert (exp / "training_states" / "4.state").is_file()


def test_cli_errors(option_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert train_main(["-opt", str(option_file), "--launcher", "pytorch"]) == 2
    assert "--launcher pytorch" in capsys.readouterr().err
    assert (
        train_main(
            ["-opt", str(option_file), "--set", "train.amp.dtype=fp8", "train.amp.enabled=true"]
        )
        == 2
    )
    assert "train.amp.dtype" in capsys.readouterr().err
    assert train_main(["-opt", str(option_file), "--set", "path.resume_state=nowhere/7.state"]) == 2
    assert "nowhere/7.state" in capsys.readouterr().err


def test_training_precision_and_archive_names(tmp_path: Path) -> None:
    def precision(opt: dict) -> str:
        return amp_config(opt).precision

    assert precision({"train": {}}) == "fp32"
    assert precision({"train": {"amp": {"enabled": False, "dtype": "fp16"}}}) == "fp32"
    assert precision({"train": {"amp": {"enabled": True}}}) == "bf16"
    assert precision({"train": {"amp": {"enabled": True, "dtype": "fp16"}}}) == "fp16"
    with pytest.raises(ValueError, match="train.amp"):
        precision({"train": {"amp": "yes"}})
    assert archive_existing(tmp_path / "absent") is None
    (tmp_path / "exp").mkdir()
    first = archive_existing(tmp_path / "exp")
    (tmp_path / "exp").mkdir()
    second = archive_existing(tmp_path / "exp")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith("exp_archived_") and not (tmp_path / "exp").exists()


def test_option_warnings_reach_the_experiment_log(tmp_path: Path) -> None:
    # Keys of the original files that lptn ignores, and one the runner sets: each is named
    # on the console while the file is parsed and again in the log, once.
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_options(data, name="warned", gan=False, total_iter=1, checkpoint_freq=1)
    opt["scale"] = 1
    opt["datasets"]["train"]["num_prefetch_queue"] = 3
    option_file = write_options(opt, tmp_path / "warned.yml")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
    )
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "train.py"),
            "-opt",
            str(option_file),
            "--device",
            "cpu",
            "--set",
            "val.pbar=true",
            "is_train=false",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log_text = next((tmp_path / "experiments" / "warned").glob("train_warned_*.log")).read_text()
    notices = [
        f"WARNING: {option_file}: scale: ignored (",
        f"WARNING: {option_file}: datasets.train.num_prefetch_queue: ignored (",
        f"WARNING: {option_file}: val.pbar: ignored (",
        f"WARNING: {option_file}: is_train: set by the runner",
    ]
    for notice in notices:
        assert log_text.count(notice) == 1, log_text
        assert notice in done.stdout
    # They come first, before the start-up lines of the run.
    assert log_text.index(notices[0]) < log_text.index("train set tiny_train")


def test_num_gpu_2_in_one_process_trains_the_original_effective_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # BasicSR runs num_gpu: 2 without a launcher as one DataParallel process with
    # batch_size_per_gpu x 2; lptn trains that batch on its one device and says so.
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=4)
    runs = {}
    for name, num_gpu, batch in (("two_gpus", 2, 2), ("one_gpu", 1, 4)):
        opt = tiny_options(data, name=name, gan=False, total_iter=2, batch_size=batch)
        opt["num_gpu"] = num_gpu
        option_file = write_options(opt, tmp_path / f"{name}.yml")
        assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0
        exp = tmp_path / "experiments" / name
        runs[name] = (
            next(exp.glob(f"train_{name}_*.log")).read_text(),
            torch.load(exp / "models" / "net_g_latest.pth", weights_only=True)["params"],
        )
    log_text = runs["two_gpus"][0]
    assert (
        "WARNING: num_gpu: 2 in one process: lptn trains on one device (CPU" in log_text
        and "datasets.train.batch_size_per_gpu 2 x 2 = 4" in log_text
        and "--launcher pytorch" in log_text
    )
    assert "train set tiny_train: 4 images, batch 4, 1 iterations per epoch" in log_text
    assert "num_gpu:" not in runs["one_gpu"][0]
    # The same optimisation as batch_size_per_gpu: 4 on one device: identical weights.
    two, one = runs["two_gpus"][1], runs["one_gpu"][1]
    assert all(torch.equal(two[k], one[k]) for k in one)
    # The option file's batch is left as written (the copy beside the log keeps 2).
    copy = yaml.safe_load(
        next((tmp_path / "experiments" / "two_gpus").glob("train_two_gpus_*.yml")).read_text()
    )
    assert copy["datasets"]["train"]["batch_size_per_gpu"] == 2


def test_data_parallel_gpus_only_for_one_process_with_num_gpu_above_1() -> None:
    cpu = torch.device("cpu")
    one = Runtime(device=cpu)
    assert data_parallel_gpus({"num_gpu": 2}, one) == 2
    assert data_parallel_gpus({"num_gpu": 8}, one) == 8
    for value in (0, 1, "auto"):
        assert data_parallel_gpus({"num_gpu": value}, one) == 1
    # Under a launcher each process has its own batch_size_per_gpu, as in BasicSR.
    assert data_parallel_gpus({"num_gpu": 2}, Runtime(device=cpu, world_size=2)) == 1
