"""Where a training run writes (``path.experiments_root`` moves every output) and with which
permissions (the umask's, so that a group on a shared cluster can read checkpoints)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from train_test_utils import make_image_folders, tiny_options, write_options

from lptn.engine.cli import train_main


def test_experiments_root_moves_models_states_log_images_and_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard", reason="use_tb_logger needs the tensorboard package")
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_options(
        data, name="moved", gan=False, total_iter=2, checkpoint_freq=2, val=True, val_freq=2
    )
    run = tmp_path / "elsewhere" / "run"
    opt["path"]["experiments_root"] = str(run)
    opt["logger"]["use_tb_logger"] = True
    option_file = write_options(opt, tmp_path / "moved.yml")

    assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0

    assert not (tmp_path / "experiments").exists()
    assert not (tmp_path / "tb_logger").exists()
    assert (run / "models" / "net_g_2.pth").is_file()
    assert (run / "models" / "net_g_latest.pth").is_file()
    assert (run / "models" / "net_g_best.pth").is_file()
    assert (run / "training_states" / "2.state").is_file()
    assert len(list(run.glob("train_moved_*.log"))) == 1
    assert len(list(run.glob("train_moved_*.yml"))) == 1
    assert sorted(p.name for p in (run / "visualization" / "2").glob("*.png")) == [
        "img_0.png",
        "img_1.png",
    ]
    assert list((run / "tb_logger").glob("events.out.tfevents.*"))
    # A second run archives the moved folder beside it, not under experiments/.
    assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0
    archived = list((tmp_path / "elsewhere").glob("run_archived_*"))
    assert len(archived) == 1 and (archived[0] / "training_states" / "2.state").is_file()
    assert not (tmp_path / "experiments").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_training_output_follows_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    monkeypatch.chdir(tmp_path)
    data = make_image_folders(tmp_path / "data", count=2)
    opt = tiny_options(
        data, name="shared", gan=True, total_iter=2, checkpoint_freq=2, val=True, val_freq=2
    )
    option_file = write_options(opt, tmp_path / "shared.yml")
    old = os.umask(umask)
    try:
        assert train_main(["-opt", str(option_file), "--device", "cpu"]) == 0
    finally:
        os.umask(old)
    exp = tmp_path / "experiments" / "shared"
    modes = {
        str(p.relative_to(exp)): stat.S_IMODE(p.stat().st_mode) for p in [exp, *exp.rglob("*")]
    }
    assert "models/net_g_2.pth" in modes and "training_states/2.state" in modes
    assert "models/net_d_latest.pth" in modes and "visualization/2/img_0.png" in modes
    for name, mode in modes.items():
        is_dir = (exp / name).is_dir() if name != "." else True
        expected = (0o777 if is_dir else 0o666) & ~umask
        assert mode == expected, f"{name}: {oct(mode)}, expected {oct(expected)}"
