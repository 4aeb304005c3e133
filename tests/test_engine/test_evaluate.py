"""test.py on the FiveK sample with the official checkpoint reproduces the published figures."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lptn.data.image_io import read_image
from lptn.engine.cli import evaluate_main
from lptn.platform.options import parse_options

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
    metric_names = ["deltae", "deltae2000", "psnr", "ssim", "ssim_lut"]
    assert rows[0] == ["dataset", "image", "status", *metric_names, "reason"]
    assert len(rows) == 1 + 23 + 1
    assert [r[2] for r in rows[1:]] == ["ok"] * 23 + ["mean"]
    # The LUT papers' protocol (docs/evaluation.md, Measured fidelity).
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


def test_a_corrupt_image_is_reported_and_the_others_are_kept(
    tmp_path: Path,
    fivek_sample_dir: Path,
    official_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Two real pairs and one input that is not an image; only path.results_root is set, so
    every output (log, images, panels, metrics) must land under it."""
    data, results = tmp_path / "data", tmp_path / "results"
    names = ["a0212", "a0535"]
    for side in ("source", "target"):
        (data / side).mkdir(parents=True)
        for name in names:
            (data / side / f"{name}.png").write_bytes(
                (fivek_sample_dir / side / f"{name}.png").read_bytes()
            )
    (data / "source" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (data / "target" / "broken.png").write_bytes(
        (fivek_sample_dir / "target" / "a0212.png").read_bytes()
    )
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    code = evaluate_main(
        [
            "-opt",
            str(REPO / "options/test/LPTN/test_FiveK_sample.yml"),
            "--device",
            "cpu",
            "--set",
            f"datasets.test.dataroot_lq={data / 'source'}",
            f"datasets.test.dataroot_gt={data / 'target'}",
            f"path.pretrain_network_g={official_checkpoint}",
            f"path.results_root={results}",
            "val.save_comparison=true",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "1 image(s) could not be evaluated" in err and "Traceback" not in err
    report = json.loads((results / "metrics.json").read_text())["fivek_sample"]
    assert sorted(report["per_image"]) == names
    assert list(report["failed"]) == ["broken.png"]
    assert str(data / "source" / "broken.png") in report["failed"]["broken.png"]
    for metric in ("psnr", "ssim"):
        values = [report["per_image"][n][metric] for n in names]
        assert np.isfinite(values).all()
        assert report["mean"][metric] == pytest.approx(np.mean(values))
    # metrics.csv lists the failed image too, with its status and reason, as metrics.json.
    with open(results / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["image"], r["status"]) for r in rows] == [
        *[(n, "ok") for n in names],
        ("broken.png", "failed"),
        ("MEAN", "mean"),
    ]
    failed_row = rows[len(names)]
    assert failed_row["reason"] == report["failed"]["broken.png"]
    assert failed_row["psnr"] == failed_row["ssim"] == ""
    assert float(rows[-1]["psnr"]) == pytest.approx(report["mean"]["psnr"])
    for name in names:
        assert (results / "visualization" / "fivek_sample" / f"{name}.png").is_file()
        assert (results / "comparison" / "fivek_sample" / f"{name}.png").is_file()
    log_text = (results / "test_LPTN_FiveK_sample.log").read_text()
    assert "broken.png" in log_text and "not evaluated" in log_text
    assert list(workdir.iterdir()) == []  # nothing went to ./results


def test_results_root_alone_moves_logs_and_images(tmp_path: Path) -> None:
    opt = parse_options(
        REPO / "options/test/LPTN/test_FiveK_sample.yml",
        [f"path.results_root={tmp_path / 'out'}"],
        is_train=False,
        root=tmp_path / "elsewhere",
    )
    assert opt["path"]["results_root"] == str(tmp_path / "out")
    assert opt["path"]["log"] == str(tmp_path / "out")
    assert opt["path"]["visualization"] == str(tmp_path / "out" / "visualization")
    default = parse_options(
        REPO / "options/test/LPTN/test_FiveK_sample.yml", [], is_train=False, root=tmp_path
    )
    assert default["path"]["log"] == str(tmp_path / "results" / "LPTN_FiveK_sample")


def test_option_warnings_reach_the_test_log(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path
) -> None:
    # An original-file key lptn ignores is named on the console and again in test.py's log.
    small = tmp_path / "small"
    for side in ("source", "target"):
        (small / side).mkdir(parents=True)
        first = sorted((fivek_sample_dir / side).glob("*.png"))[0]
        (small / side / first.name).write_bytes(first.read_bytes())
    assert _run(tmp_path, small, official_checkpoint, "scale=1") == 0
    log_text = next(tmp_path.glob("test_*.log")).read_text()
    assert log_text.count("scale: ignored (") == 1
