"""Every data problem of the train and val sets is reported at start, all at once, before the
experiment folder is created or an old one archived. The sets are FiveK sample photos."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
from PIL import Image
from train_test_utils import tiny_options, write_options

from lptn.engine.cli import train_main

NAMES = ("a0212", "a0481", "a0535", "a1305")  # HxW 512x341 twice, 341x512 twice


def _fivek_copy(fivek: Path, root: Path, names=NAMES) -> Dict[str, Path]:
    data = {"source": root / "source", "target": root / "target"}
    for side, folder in data.items():
        folder.mkdir(parents=True)
        for name in names:
            shutil.copy(fivek / side / f"{name}.png", folder / f"{name}.png")
    return data


def _sideways(path: Path) -> None:
    """Re-save ``path`` (PNG) as a camera JPEG held sideways: pixels turned, Orientation 6."""
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(
        path.with_suffix(".jpg"), quality=95, exif=exif
    )
    path.unlink()


def _run(tmp_path: Path, opt: dict, capsys: pytest.CaptureFixture) -> tuple:
    code = train_main(["-opt", str(write_options(opt, tmp_path / "run.yml")), "--device", "cpu"])
    return code, capsys.readouterr().err


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # experiments/ goes under the working directory
    return tmp_path


def test_every_train_and_val_problem_is_listed_before_any_folder(
    in_tmp: Path, fivek_sample_dir: Path, capsys
) -> None:
    data = _fivek_copy(fivek_sample_dir, in_tmp / "data")
    # a target exported at another size
    target = cv2.imread(str(data["target"] / "a0481.png"))
    cv2.imwrite(str(data["target"] / "a0481.png"), cv2.resize(target, (300, 200)))
    # an input cut short by an interrupted copy
    jpeg = data["source"] / "a0535.jpg"
    cv2.imwrite(str(jpeg), cv2.imread(str(data["source"] / "a0535.png")))
    (data["source"] / "a0535.png").unlink()
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    opt = tiny_options(data, name="check", unpaired=False, gan=False, val=True)
    opt["datasets"]["train"]["gt_size"] = 400  # larger than a0212, 512x341
    val = in_tmp / "val"
    _fivek_copy(fivek_sample_dir, val, names=("a0212",))
    small = cv2.imread(str(val / "source" / "a0212.png"))[:7, :7]
    cv2.imwrite(str(val / "source" / "a0212.png"), small)
    cv2.imwrite(str(val / "target" / "a0212.png"), small)
    opt["datasets"]["val"].update(dataroot_lq=str(val / "source"), dataroot_gt=str(val / "target"))
    code, err = _run(in_tmp, opt, capsys)
    assert code == 2
    assert "datasets.train: " in err and "datasets.val: " in err
    assert "a0481.png is 200x300" in err  # the pair of two sizes
    assert "a0535.jpg" in err and "truncated" in err  # the cut file
    assert "a0212.png is 512x341 (HxW), smaller than 400x400" in err  # the crop
    assert "a1305.png is 341x512 (HxW), smaller than 400x400" in err  # every one, not the first
    assert "is 7x7 (HxW), smaller than 9x9" in err  # val: below the network's minimum
    assert not (in_tmp / "experiments").exists()


def test_a_crop_larger_than_every_image_archives_nothing(
    in_tmp: Path, fivek_sample_dir: Path, capsys
) -> None:
    data = _fivek_copy(fivek_sample_dir, in_tmp / "data")
    opt = tiny_options(data, name="big_crop", unpaired=False, gan=False)
    old = in_tmp / "experiments" / "big_crop"
    old.mkdir(parents=True)
    (old / "keep.txt").write_text("an earlier run")
    opt["datasets"]["train"]["gt_size"] = 1000
    code, err = _run(in_tmp, opt, capsys)
    assert code == 2 and "8 data problems" in err and "smaller than 1000x1000" in err
    assert [p.name for p in (in_tmp / "experiments").iterdir()] == ["big_crop"]
    assert (old / "keep.txt").is_file()


def test_full_images_of_mixed_orientations_in_batches_are_refused_at_start(
    in_tmp: Path, fivek_sample_dir: Path, capsys
) -> None:
    data = _fivek_copy(fivek_sample_dir, in_tmp / "data")
    _sideways(data["source"] / "a0481.png")  # still 341x512 once upright
    opt = tiny_options(data, name="full", unpaired=False, gan=False, batch_size=2)
    opt["datasets"]["train"]["if_fix_size"] = False
    code, err = _run(in_tmp, opt, capsys)
    assert code == 2
    assert "datasets.train.if_fix_size: false" in err and "batch_size_per_gpu: 1" in err
    assert "512x341" in err and "341x512" in err
    assert "stack" not in err
    assert not (in_tmp / "experiments").exists()


def test_a_sideways_camera_file_with_its_upright_export_trains(
    in_tmp: Path, fivek_sample_dir: Path, capsys
) -> None:
    data = _fivek_copy(fivek_sample_dir, in_tmp / "data")
    _sideways(data["source"] / "a0212.png")
    opt = tiny_options(data, name="sideways", unpaired=False, gan=False, total_iter=1)
    opt["logger"]["save_checkpoint_freq"] = 1
    code, err = _run(in_tmp, opt, capsys)
    assert code == 0, err
    log = next((in_tmp / "experiments" / "sideways").glob("train_*.log")).read_text()
    assert "train set datasets.train: 8 images checked" in log
