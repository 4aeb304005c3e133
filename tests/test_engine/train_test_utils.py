"""Tiny generated datasets and option files for the training-loop tests.

Images are 40x40 RGB PNGs made from smooth random fields (source) and the same fields under a
fixed tone change (target), so the unpaired and the paired datasets read real files; the
network is the smallest LPTN (one residual block per branch) trained on 32x32 crops.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import cv2
import numpy as np
import yaml

from lptn.platform.options import parse_options

IMAGE_SIZE = 40


def _smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = rng.uniform(0, 255, size=(5, 5, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def retouch(img: np.ndarray) -> np.ndarray:
    """The fixed 'target style': brighter, warmer, lower contrast."""
    out = img.astype(np.float32) * 0.8 + np.array([40, 25, 10], np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_image_folders(root: Path, count: int = 5, seed: int = 0) -> Dict[str, Path]:
    """``root/source`` and ``root/target`` with ``count`` aligned pairs ``img_{i}.png``."""
    rng = np.random.default_rng(seed)
    folders = {"source": root / "source", "target": root / "target"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rgb = _smooth_image(rng, IMAGE_SIZE)
        cv2.imwrite(str(folders["source"] / f"img_{i}.png"), rgb[..., ::-1])
        cv2.imwrite(str(folders["target"] / f"img_{i}.png"), retouch(rgb)[..., ::-1])
    return folders


def tiny_options(
    data: Dict[str, Path],
    *,
    name: str = "tiny",
    unpaired: bool = True,
    gan: bool = True,
    total_iter: int = 4,
    checkpoint_freq: int = 2,
    val: bool = False,
    val_freq: Optional[int] = None,
    batch_size: int = 2,
    extra_train: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A complete training option tree (before parsing) for the tiny setup."""
    train_ds: Dict[str, Any] = {
        "name": "tiny_train",
        "type": "UnPairedImageDataset" if unpaired else "PairedImageDataset",
        "dataroot_lq": str(data["source"]),
        "dataroot_gt": str(data["target"]),
        "io_backend": {"type": "disk"},
        "if_fix_size": True,
        "gt_size": 32,
        "use_flip": True,
        "use_rot": True,
        "use_shuffle": True,
        "num_worker_per_gpu": 0,
        "batch_size_per_gpu": batch_size,
        "dataset_enlarge_ratio": 1,
        "prefetch_mode": None,
    }
    opt: Dict[str, Any] = {
        "name": name,
        "model_type": "LPTNModel",
        "num_gpu": 0,
        "manual_seed": 7,
        "datasets": {"train": train_ds},
        "network_g": {"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 3},
        "path": {"pretrain_network_g": None, "resume_state": None},
        "train": {
            "optim_g": {"type": "Adam", "lr": 1e-3, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
            "total_iter": total_iter,
            "warmup_iter": -1,
            "pixel_opt": {
                "type": "MSELoss",
                "loss_weight": 1000 if gan else 1.0,
                "reduction": "mean",
            },
        },
        "val": {
            "save_img": True,
            "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 4}},
        },
        "logger": {
            "print_freq": 1,
            "save_checkpoint_freq": checkpoint_freq,
            "use_tb_logger": False,
            "progress_bar": False,
        },
    }
    if gan:
        opt["network_d"] = {"type": "Discriminator"}
        opt["train"]["optim_d"] = {
            "type": "Adam",
            "lr": 1e-3,
            "weight_decay": 0,
            "betas": [0.9, 0.99],
        }
        opt["train"]["gan_opt"] = {"type": "GANLoss", "gan_type": "standard", "loss_weight": 1}
        opt["train"]["gp_opt"] = {"loss_weight": 10}
        opt["train"]["net_d_iters"] = 1
        opt["train"]["net_d_init_iters"] = 0
    if val:
        opt["datasets"]["val"] = {
            "name": "tiny_val",
            "type": "PairedImageDataset",
            "dataroot_lq": str(data["source"]),
            "dataroot_gt": str(data["target"]),
            "io_backend": {"type": "disk"},
        }
        if val_freq:
            opt["val"]["val_freq"] = val_freq
    opt["train"].update(extra_train or {})
    return opt


def tiny_test_options(
    name: str, data: Dict[str, Path], weights: Optional[Path] = None
) -> Dict[str, Any]:
    """Options for ``test.py`` on the paired folders of :func:`make_image_folders` with a tiny
    LPTN (``weights``: its file, or ~ for random weights)."""
    return {
        "name": name,
        "model_type": "LPTNTestModel",
        "num_gpu": 0,
        "datasets": {
            "test": {
                "name": "tiny",
                "type": "PairedImageDataset",
                "dataroot_lq": str(data["source"]),
                "dataroot_gt": str(data["target"]),
                "io_backend": {"type": "disk"},
            }
        },
        "network_g": {"type": "LPTN", "nrb_low": 1, "nrb_high": 1, "num_high": 3},
        "path": {"pretrain_network_g": None if weights is None else str(weights)},
        "val": {"save_img": True, "metrics": {"psnr": {"type": "calculate_psnr"}}},
    }


def write_options(opt: Dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False), encoding="utf-8")
    return path


def parsed(opt: Dict[str, Any], root: Path, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Write ``opt`` to ``root/{name}.yml`` and parse it as train.py would (cwd = ``root``)."""
    path = write_options(copy.deepcopy(opt), root / f"{opt['name']}.yml")
    return parse_options(path, overrides, is_train=True, root=root)


def options_failing_before_data(tmp_path: Path, name: str) -> Path:
    """An option file whose training data cannot be read: a run that fails with an error
    not naming ``not_there`` stopped before touching the data."""
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_options(data, name=name)
    opt["datasets"]["train"]["dataroot_lq"] = str(tmp_path / "not_there")
    return write_options(opt, tmp_path / f"{name}.yml")


def assert_train_py_fails_before_data(
    tmp_path: Path, capsys: Any, overrides: Sequence[str], expected: str
) -> Path:
    """``train.py --set overrides`` exits 2 with ``expected`` in the error, before reading data
    or creating any folder; returns the option file (cwd must be ``tmp_path``)."""
    from lptn.engine.cli import train_main

    option_file = options_failing_before_data(tmp_path, "early")
    assert train_main(["-opt", str(option_file), "--set", *overrides]) == 2
    err = capsys.readouterr().err
    assert expected in err and "not_there" not in err
    assert not (tmp_path / "experiments").exists()
    return option_file
