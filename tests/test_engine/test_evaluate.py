"""test.py on the FiveK sample with the official checkpoint reproduces the published figures."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lptn.data.image_io import read_image
from lptn.engine.cli import evaluate_main

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, fivek_sample_dir: Path, checkpoint: Path, *extra: str) -> int:
    return evaluate_main(
        [
            "-opt",
            str(REPO / "options/test/LPTN/test_FiveK_sample.yml"),
            "--device",
            "cpu",
            "--set",
            f"datasets.test.dataroot_lq={fivek_sample_dir / 'source'}",
            f"datasets.test.dataroot_gt={fivek_sample_dir / 'target'}",
            f"path.pretrain_network_g={checkpoint}",
            f"path.results_root={tmp_path}",
            f"path.visualization={tmp_path / 'visualization'}",
            f"path.log={tmp_path}",
            *extra,
        ]
    )


def test_official_checkpoint_on_fivek_sample(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path
) -> None:
    assert _run(tmp_path, fivek_sample_dir, official_checkpoint, "val.save_comparison=true") == 0
    result = json.loads((tmp_path / "metrics.json").read_text())["fivek_sample"]
    assert result["mean"]["psnr"] == pytest.approx(22.908, abs=0.005)
    assert result["mean"]["ssim"] == pytest.approx(0.8808, abs=0.0005)
    names = sorted(p.stem for p in (fivek_sample_dir / "source").glob("*.png"))
    assert sorted(result["per_image"]) == names
    assert np.mean([v["psnr"] for v in result["per_image"].values()]) == pytest.approx(
        result["mean"]["psnr"]
    )
    rows = list(csv.reader(open(tmp_path / "metrics.csv")))
    assert rows[0] == ["dataset", "image", "deltae", "deltae2000", "psnr", "ssim", "ssim_lut"]
    assert len(rows) == 1 + 23 + 1
    # The LUT papers' protocol (README, Measured fidelity).
    assert result["mean"]["ssim_lut"] == pytest.approx(0.8824, abs=0.0005)
    assert result["mean"]["deltae"] == pytest.approx(10.982, abs=0.005)
    assert result["mean"]["deltae2000"] == pytest.approx(8.290, abs=0.005)
    # The report: one row per image, worst PSNR first, thumbnails beside it.
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    worst_first = sorted(names, key=lambda n: result["per_image"][n]["psnr"])
    positions = [report.index(f'<td class="name">{name}</td>') for name in worst_first]
    assert positions == sorted(positions)
    assert f'href="visualization/fivek_sample/{worst_first[0]}.png"' in report
    thumb = read_image(tmp_path / "report_files" / "fivek_sample" / f"{names[0]}_output.jpg")
    assert max(thumb.shape[:2]) == 160
    # Outputs: full resolution, same file names, PNG; comparison panels three images wide.
    for name in names[:3]:
        out = read_image(tmp_path / "visualization" / "fivek_sample" / f"{name}.png")
        src = read_image(fivek_sample_dir / "source" / f"{name}.png")
        assert out.shape == src.shape and out.dtype == np.uint8
        panel = read_image(tmp_path / "comparison" / "fivek_sample" / f"{name}.png")
        assert panel.shape == (src.shape[0], 3 * src.shape[1], 3)


def test_missing_dataset_folder_is_a_clear_error(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    code = _run(
        tmp_path,
        fivek_sample_dir,
        official_checkpoint,
        f"datasets.test.dataroot_lq={tmp_path / 'nowhere'}",
    )
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def test_wrong_architecture_names_the_fitting_options(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _run(tmp_path, fivek_sample_dir, official_checkpoint, "network_g.num_high=4") == 2
    err = capsys.readouterr().err
    assert "trans_mask_block_3" in err and "'num_high': 3" in err
