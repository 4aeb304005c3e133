"""ImageAdaptive3DLUT trained paired by train.py (the shipped sample option file), and resumed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from test_train_resume import _assert_equal_tree, _weights
from train_test_utils import make_image_folders, parsed, tiny_options

from lptn.archs import build_network
from lptn.archs.weight_loading import load_network_weights
from lptn.engine.train_loop import run_training
from lptn.platform.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_OPTIONS = REPO_ROOT / "options" / "train" / "LUT3D" / "train_FiveK_sample_paired.yml"
SPLIT = REPO_ROOT / "options" / "train" / "LPTN" / "fivek_sample_split"
CPU = Runtime(device=torch.device("cpu"))
LUT_NET = {"type": "ImageAdaptive3DLUT", "num_luts": 3, "lut_size": 9}
LUT_LOSSES = {
    "lut_smooth_opt": {"type": "LUTSmoothnessLoss", "loss_weight": 1e-4},
    "lut_mono_opt": {"type": "LUTMonotonicityLoss", "loss_weight": 10},
}


def _mse(net: torch.nn.Module, pairs: List[Tuple[str, np.ndarray, np.ndarray]]) -> float:
    """Mean MSE of ``net`` over the training pairs, at a quarter of their size."""
    errors = []
    with torch.no_grad():
        for _, source, target in pairs:
            lq, gt = (
                F.interpolate(
                    torch.from_numpy(a.transpose(2, 0, 1).copy())[None], scale_factor=0.25
                )
                for a in (source, target)
            )
            errors.append(F.mse_loss(net(lq), gt).item())
    return float(np.mean(errors))


def test_train_py_lowers_the_loss_on_the_fivek_sample(
    tmp_path: Path, fivek_sample_dir: Path, fivek_pairs: List[Tuple[str, np.ndarray, np.ndarray]]
) -> None:
    opt = yaml.safe_load(SAMPLE_OPTIONS.read_text(encoding="utf-8"))
    train = opt["datasets"]["train"]
    train.update(
        dataroot_lq=str(fivek_sample_dir / "source"),
        dataroot_gt=str(fivek_sample_dir / "target"),
        meta_info_file=str(SPLIT / "train.txt"),
        gt_size=128,
        batch_size_per_gpu=2,
        num_worker_per_gpu=0,
    )
    del opt["datasets"]["val"]
    opt["train"]["total_iter"] = 12  # with the paper's rate, 1e-4
    opt["logger"].update(print_freq=4, save_checkpoint_freq=12, use_tb_logger=False)
    option_file = tmp_path / "lut3d.yml"
    option_file.write_text(yaml.safe_dump(opt), encoding="utf-8")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), "-opt", str(option_file), "--device", "cpu"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log_text = next((tmp_path / "experiments" / opt["name"]).glob("train_*.log")).read_text()
    # The regularisers are part of the step.
    assert "l_g_lut_smooth" in log_text and "l_g_lut_mono" in log_text
    weights = tmp_path / "experiments" / opt["name"] / "models" / "net_g_latest.pth"
    trained = load_network_weights(build_network(opt["network_g"]), weights).eval()
    train_names = set(SPLIT.joinpath("train.txt").read_text().split())
    pairs = [p for p in fivek_pairs if p[0] in train_names]
    before, after = _mse(torch.nn.Identity(), pairs), _mse(trained, pairs)
    assert after < 0.8 * before, (before, after)


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=5)

    def options(name: str, total_iter: int) -> dict:
        opt = tiny_options(
            data,
            name=name,
            unpaired=False,
            gan=False,
            total_iter=total_iter,
            checkpoint_freq=3,
            extra_train={**LUT_LOSSES, "pixel_target": "gt", "ema_decay": 0.9},
        )
        opt["network_g"] = dict(LUT_NET)
        return opt

    straight = run_training(parsed(options("straight", 6), tmp_path), CPU, handle_signals=False)
    first = run_training(parsed(options("split", 3), tmp_path), CPU, handle_signals=False)
    torch.manual_seed(999)  # the resumed run must restore the RNGs (dropout draws from them)
    resumed = run_training(
        parsed(options("split", 6), tmp_path, [f"path.resume_state={first.last_state}"]),
        CPU,
        handle_signals=False,
    )
    assert straight.status == resumed.status == "finished"
    a = straight.experiments_root / "models" / "net_g_6.pth"
    b = resumed.experiments_root / "models" / "net_g_6.pth"
    _assert_equal_tree(torch.load(a, weights_only=True), torch.load(b, weights_only=True), "net_g")
    assert not torch.equal(
        _weights(straight.experiments_root / "models" / "net_g_3.pth")["basis_luts"],
        _weights(a)["basis_luts"],
    )


def test_regulariser_on_a_network_without_luts_is_refused(tmp_path: Path) -> None:
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_options(data, name="nolut", unpaired=False, gan=False, extra_train=dict(LUT_LOSSES))
    with pytest.raises(
        ValueError, match=r"train.lut_smooth_opt: regularises basis LUTs, but network_g \(LPTN\)"
    ):
        run_training(parsed(opt, tmp_path), CPU, handle_signals=False)
