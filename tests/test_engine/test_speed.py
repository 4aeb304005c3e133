"""test_speed.py: original keys, several sizes, precision, the speed.json layout."""

import json
from pathlib import Path

import cv2
import pytest

from lptn.engine.cli import speed_main
from lptn.engine.speed import parse_sizes
from lptn.platform.options import OptionError

REPO = Path(__file__).resolve().parents[2]


def test_speed_report(tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path) -> None:
    code = speed_main(
        [
            "-opt",
            str(REPO / "options/test/LPTN/test_speed_FiveK.yml"),
            "--device",
            "cpu",
            "--precision",
            "bf16",
            "--set",
            f"datasets.test.dataroot_lq={fivek_sample_dir / 'source'}",
            f"datasets.test.dataroot_gt={fivek_sample_dir / 'target'}",
            "datasets.test.io_backend.type=disk",
            f"path.pretrain_network_g={official_checkpoint}",
            f"path.results_root={tmp_path}",
            f"path.log={tmp_path}",
            "val.num_img=2",
            "val.times_per_img=2",
            "val.warmup=1",
            "val.fix_img_size=[[33, 47], [64, 96]]",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "speed.json").read_text())
    assert report["precision"] == "bf16" and report["device"].startswith("CPU")
    assert set(report["sizes"]) == {"33x47", "64x96"}
    for stats in report["sizes"].values():
        assert 0 < stats["median_ms"] <= stats["p90_ms"]
        assert stats["runs"] == 4 and stats["peak_mem_mb"] >= 0
        assert stats["images_per_s"] == pytest.approx(1e3 / stats["median_ms"])


def test_speed_without_dataset_uses_a_real_photo(tmp_path: Path) -> None:
    opt = tmp_path / "speed.yml"
    opt.write_text(
        "name: s\nmodel_type: LPTNTestModel\nnum_gpu: 0\n"
        "network_g: {type: LPTN, nrb_low: 1, nrb_high: 1, num_high: 2}\n"
        "val: {num_img: 1, times_per_img: 1, warmup: 0, fix_img_size: [40, 48]}\n"
    )
    assert (
        speed_main(
            ["-opt", str(opt), "--set", f"path.results_root={tmp_path}", f"path.log={tmp_path}"]
        )
        == 0
    )
    report = json.loads((tmp_path / "speed.json").read_text())
    assert list(report["sizes"]) == ["40x48"] and report["precision"] == "fp32"


def test_every_image_is_kept_when_sizes_repeat(
    tmp_path: Path,
    fivek_sample_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """Original sizes (fix_img_size ~) with two images of one size, one of another and one
    corrupt file: each readable image gets its entry, each size a summary over its images,
    the corrupt one is reported (exit 1). Only path.results_root is set: the log and
    speed.json must land under it."""
    data, results = tmp_path / "data", tmp_path / "results"
    crops = {"a0212": (40, 48), "a0481": (40, 48), "a0535": (36, 52)}
    for side in ("source", "target"):
        (data / side).mkdir(parents=True)
        for name, (h, w) in crops.items():
            img = cv2.imread(str(fivek_sample_dir / side / f"{name}.png"))
            cv2.imwrite(str(data / side / f"{name}.png"), img[:h, :w])
        (data / side / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    opt = tmp_path / "speed.yml"
    opt.write_text(
        "name: s\nmodel_type: LPTNTestModel\nnum_gpu: 0\n"
        "network_g: {type: LPTN, nrb_low: 1, nrb_high: 1, num_high: 2}\n"
        f"datasets: {{test: {{type: PairedImageDataset, dataroot_lq: {data / 'source'}, "
        f"dataroot_gt: {data / 'target'}}}}}\n"
        "val: {num_img: 4, times_per_img: 2, warmup: 0, fix_img_size: ~}\n"
    )
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    assert speed_main(["-opt", str(opt), "--set", f"path.results_root={results}"]) == 1
    assert "1 image(s) could not be read" in capsys.readouterr().err
    report = json.loads((results / "speed.json").read_text())
    assert list(report["failed"]) == ["broken.png"]
    assert sorted((e["image"], e["size"]) for e in report["images"]) == [
        ("a0212.png", "40x48"),
        ("a0481.png", "40x48"),
        ("a0535.png", "36x52"),
    ]
    for entry in report["images"]:
        assert entry["runs"] == 2 and 0 < entry["median_ms"] <= entry["p90_ms"]
    assert report["sizes"]["40x48"]["images"] == 2 and report["sizes"]["40x48"]["runs"] == 4
    assert report["sizes"]["36x52"]["images"] == 1 and report["sizes"]["36x52"]["runs"] == 2
    assert (results / "speed_s.log").is_file()
    assert list(workdir.iterdir()) == []  # nothing went to ./results


@pytest.mark.parametrize("value", [[480], [[480, 0]], "480x720", [[1, 2, 3]]])
def test_bad_sizes_are_named(value: object) -> None:
    with pytest.raises(OptionError, match="val.fix_img_size"):
        parse_sizes(value)


def test_original_single_size_form() -> None:
    assert parse_sizes([3840, 2160]) == [(3840, 2160)]
    assert parse_sizes(None) is None
