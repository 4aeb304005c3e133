"""The FiveK 480p paired recipes (options/train/LPTN/train_FiveK_480p_paired.yml and
options/train/LUT3D/train_FiveK_480p_paired.yml) run unchanged once datasets/FiveK is in place
(made here from real FiveK pairs by create_lmdb.py --fivek), paired: no critic is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PAIRED = REPO / "options" / "train" / "LPTN" / "train_FiveK_480p_paired.yml"
UNPAIRED = REPO / "options" / "train" / "LPTN" / "train_FiveK.yml"
LUT_PAIRED = REPO / "options" / "train" / "LUT3D" / "train_FiveK_480p_paired.yml"


def test_the_recipe_is_the_released_one_less_the_gan() -> None:
    paired, released = (yaml.safe_load(p.read_text()) for p in (PAIRED, UNPAIRED))
    for key in ("dataroot_gt", "dataroot_lq", "batch_size_per_gpu", "gt_size"):
        assert paired["datasets"]["train"][key] == released["datasets"]["train"][key], key
    assert paired["datasets"]["train"]["type"] == "PairedImageDataset"
    assert paired["datasets"]["val"] == released["datasets"]["val"]
    assert paired["network_g"] == released["network_g"]
    for key in ("optim_g", "scheduler", "total_iter", "pixel_opt"):
        assert paired["train"][key] == released["train"][key], key
    assert paired["train"]["pixel_target"] == "gt"
    assert "network_d" not in paired and "gan_opt" not in paired["train"]


@pytest.mark.parametrize(
    "recipe, experiment",
    [(PAIRED, "LPTN_FiveK_480p_paired"), (LUT_PAIRED, "LUT3D_FiveK_480p_paired")],
    ids=["LPTN", "LUT3D"],
)
def test_trains_unchanged_on_datasets_fivek(
    tmp_path: Path, fivek_sample_dir: Path, recipe: Path, experiment: str
) -> None:
    names = sorted(p.name for p in (fivek_sample_dir / "source").glob("*.png"))
    for split, chosen in (("train", names[:2]), ("test", names[2:3])):
        for sub, folder in (("A", "source"), ("B", "target")):
            dst = tmp_path / "datasets" / "FiveK" / "FiveK_480p" / split / sub
            dst.mkdir(parents=True)
            for name in chosen:
                shutil.copy(fivek_sample_dir / folder / name, dst / name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    made = run(str(REPO / "scripts/data_preparation/create_lmdb.py"), "--fivek", "datasets/FiveK")
    assert made.returncode == 0, made.stderr
    # Only the length and the loader's size change (a CPU test); the file itself is unchanged.
    sizes = ["train.total_iter=2", "datasets.train.batch_size_per_gpu=2"]
    sizes += ["datasets.train.num_worker_per_gpu=0", "datasets.train.dataset_enlarge_ratio=1"]
    sizes += ["val.val_freq=2", "logger.save_checkpoint_freq=2", "logger.use_tb_logger=false"]
    done = run(str(REPO / "train.py"), "-opt", str(recipe), "--device", "cpu", "--set", *sizes)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    models = tmp_path / "experiments" / experiment / "models"
    saved = sorted(p.name for p in models.iterdir())
    assert "net_g_latest.pth" in saved and not any(n.startswith("net_d") for n in saved), saved
