"""A tiny LPTNPaper trained by train.py for a few iterations: a weights file of another
architecture and other options than the official one, written the way training writes it."""

from __future__ import annotations

from pathlib import Path

from train_test_utils import make_image_folders, tiny_options, write_options

#: the trained generator's block: another architecture, other options than the official file
TINY_PAPER = {"type": "LPTNPaper", "nrb_low": 1, "nrb_high": 1, "num_high": 2}


def train_tiny_paper(root: Path) -> Path:
    """Train :data:`TINY_PAPER` paired for 3 iterations under ``root``; returns the
    ``net_g_latest.pth`` that training wrote."""
    from lptn.engine.cli import train_main

    data = make_image_folders(root / "data", count=3)
    opt = tiny_options(data, name="tiny_paper", unpaired=False, gan=False, total_iter=3)
    opt["network_g"] = dict(TINY_PAPER)
    opt["path"]["experiments_root"] = str(root / "run")
    option_file = write_options(opt, root / "tiny_paper.yml")
    assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0
    weights = root / "run" / "models" / "net_g_latest.pth"
    assert weights.is_file()
    return weights
