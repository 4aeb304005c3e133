"""Two-process training on the CPU with gloo: DDP (the gradient penalty's double backward
included), rank-0-only writing, distributed validation equal to test.py's, resume.

One straight 6-iteration run (``torch.multiprocessing.spawn``) and one run of 3 + 3
iterations through ``python -m torch.distributed.run train.py --launcher pytorch`` (stop, then
``--auto_resume``) share the same options; 5 val images split 3 / 2 between the ranks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import torch
import torch.multiprocessing as mp
from dist_test_utils import free_port, train_worker
from train_test_utils import make_image_folders, tiny_options, write_options

from lptn.data import build_dataset
from lptn.engine.evaluate import evaluate_dataset
from lptn.engine.training_state import load_training_state
from lptn.models import build_model
from lptn.platform.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
CPU = Runtime(device=torch.device("cpu"))
WORLD = 2


def _weights(path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["params"]


def _options(tmp: Path, name: str) -> Path:
    data = make_image_folders(tmp / "data", count=5)
    opt = tiny_options(data, name=name, total_iter=6, checkpoint_freq=3, val=True, val_freq=3)
    opt["logger"]["use_tb_logger"] = True
    return write_options(opt, tmp / f"{name}.yml")


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """6 iterations on 2 spawned processes; what each rank held and wrote."""
    root = tmp_path_factory.mktemp("ddp")
    opt_path = _options(root, "ddp")
    out = root / "records"
    out.mkdir()
    mp.spawn(
        train_worker,
        args=(WORLD, free_port(), str(opt_path), str(root), str(out)),
        nprocs=WORLD,
        join=True,
    )
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return {"root": root, "exp": root / "experiments" / "ddp", "ranks": ranks, "opt_path": opt_path}


def test_ranks_end_with_identical_weights_and_only_rank_0_writes(straight_run) -> None:
    rank0, rank1 = straight_run["ranks"]
    exp: Path = straight_run["exp"]
    assert (
        rank0["wrapped"]
        == rank1["wrapped"]
        == {"net_g": "DistributedDataParallel", "net_d": "DistributedDataParallel"}
    )
    assert rank0["iteration"] == rank1["iteration"] == 6
    for net in ("net_g", "net_d"):
        a, b = rank0["weights"][net], rank1["weights"][net]
        assert all(torch.equal(a[k], b[k]) for k in a), net
        saved = _weights(exp / "models" / f"{net}_6.pth")
        assert all(torch.equal(a[k], saved[k]) for k in a), net
    # The weights moved (the critic through the gradient penalty's double backward too).
    for net in ("net_g", "net_d"):
        first, last = _weights(exp / "models" / f"{net}_3.pth"), rank0["weights"][net]
        assert any(not torch.equal(first[k], last[k]) for k in first), net

    # Rank 1 wrote nothing in the experiment and TensorBoard folders; rank 0 wrote it all.
    assert rank1["writes"] == []
    assert any("training_states" in w for w in rank0["writes"])
    assert len(list(exp.glob("train_ddp_*.log"))) == 1
    assert len(list(exp.glob("train_ddp_*.yml"))) == 1
    assert sorted(p.name for p in (exp / "training_states").iterdir()) == ["3.state", "6.state"]
    state = load_training_state(exp / "training_states" / "6.state")
    assert len(state["rng_ranks"]) == WORLD
    # Both ranks' validation images, gathered to rank 0 and written once each.
    assert sorted(p.name for p in (exp / "visualization" / "3").iterdir()) == [
        f"img_{i}.png" for i in range(5)
    ]
    log = next(exp.glob("train_ddp_*.log")).read_text()
    assert "2 processes" in log and log.count("validation tiny_val at iteration 3") == 1


def test_distributed_validation_equals_single_process_test(straight_run) -> None:
    rank0, rank1 = straight_run["ranks"]
    exp: Path = straight_run["exp"]
    from lptn.platform.options import parse_options

    opt = parse_options(straight_run["opt_path"], is_train=True, root=straight_run["root"])
    dataset = build_dataset(opt["datasets"]["val"], "datasets.val")
    assert len(dataset) == 5  # odd: rank 0 measures 3 images, rank 1 measures 2

    def single_process(weights: Path) -> float:
        test_opt = {
            "name": "check",
            "model_type": "LPTNTestModel",
            "network_g": opt["network_g"],
            "path": {"pretrain_network_g": str(weights)},
            "val": {"metrics": opt["val"]["metrics"]},
        }
        result = evaluate_dataset(build_model(test_opt, CPU), dataset, "tiny_val", test_opt["val"])
        return result["mean"]["psnr"]

    # The final validation (weights of iteration 6) on both ranks: all 5 images, once each.
    expected = single_process(exp / "models" / "net_g_latest.pth")
    for record in (rank0, rank1):
        ((means, count),) = record["final_val"]
        assert count == 5
        assert means["psnr"] == expected
    # The best model tracked during training has test.py's number too.
    best = rank0["best"]
    assert best == rank1["best"] and best["metric"] == "psnr" and best["iter"] in (3, 6)
    # Equal up to float rounding: on AVX2-only CPUs the convolutions of two processes were seen
    # to round apart (2e-5 dB here); a wrongly split or double-counted image moves the mean
    # by far more than 1e-4 dB.
    assert single_process(exp / "models" / "net_g_best.pth") == pytest.approx(
        best["value"], abs=1e-4
    )


def _torchrun(opt_path: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={WORLD}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(REPO_ROOT / "train.py"),
        "-opt",
        str(opt_path),
        "--launcher",
        "pytorch",
        *extra,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def test_torchrun_run_resumes_from_its_own_state(straight_run, tmp_path: Path) -> None:
    """3 iterations, stop; --auto_resume to 6: the same weights as 6 straight (bit for bit,
    each rank taking back its own random streams)."""
    opt_path = Path(shutil.copyfile(straight_run["opt_path"], tmp_path / "ddp.yml"))
    first = _torchrun(opt_path, tmp_path, "--set", "train.total_iter=3")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    exp = tmp_path / "experiments" / "ddp"
    assert sorted(p.name for p in (exp / "training_states").iterdir()) == ["3.state"]

    second = _torchrun(opt_path, tmp_path, "--auto_resume")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resumed from" in second.stdout and "iteration 3" in second.stdout
    assert not list((tmp_path / "experiments").glob("ddp_archived_*"))  # resumed in place
    for net in ("net_g", "net_d"):
        resumed = _weights(exp / "models" / f"{net}_6.pth")
        straight = straight_run["ranks"][0]["weights"][net]
        assert all(torch.equal(resumed[k], straight[k]) for k in straight), net


def test_sigterm_to_one_process_stops_all_at_the_same_iteration(tmp_path: Path) -> None:
    opt_path = _options(tmp_path, "preempt")
    out = tmp_path / "records"
    out.mkdir()
    overrides = [
        "train.total_iter=100000",
        "logger.save_checkpoint_freq=100000",
        "val.val_freq=100000",
    ]
    mp.spawn(
        train_worker,
        args=(WORLD, free_port(), str(opt_path), str(tmp_path), str(out), overrides, 2.0),
        nprocs=WORLD,
        join=True,
    )
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert rank0["status"] == rank1["status"] == "interrupted"
    assert rank0["signal"] == rank1["signal"] == signal.SIGTERM  # only rank 1 received it
    assert 0 < rank0["iteration"] == rank1["iteration"] < 100000
    it = rank0["iteration"]
    state = load_training_state(
        tmp_path / "experiments" / "preempt" / "training_states" / f"{it}.state"
    )
    assert state["iter"] == it and rank0["last_state"] == rank1["last_state"]


def test_a_corrupt_image_on_one_rank_stops_every_rank_with_exit_2(tmp_path: Path) -> None:
    """The process that cannot load its batch must not leave the other one waiting in the
    gradient exchange: all save (none here before iteration 1) and exit 2 naming the file."""
    data = make_image_folders(tmp_path / "data", count=5)
    # Damage inside the pixels of an intact PNG: the start-up check reads headers only.
    broken = data["source"] / "img_3.png"
    damaged = bytearray(broken.read_bytes())
    damaged[len(damaged) // 2 : len(damaged) // 2 + 16] = bytes(16)
    broken.write_bytes(bytes(damaged))
    opt = tiny_options(data, name="corrupt", total_iter=50, checkpoint_freq=2)
    opt_path = write_options(opt, tmp_path / "corrupt.yml")
    run = _torchrun(opt_path, tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert "img_3.png: cannot be decoded" in output, output[-3000:]
    assert output.count("error: training stopped at iteration") == 2, output[-3000:]
    log = next((tmp_path / "experiments" / "corrupt").glob("train_corrupt_*.log")).read_text()
    assert "training data:" in log and "img_3.png" in log
