"""The offline demo dataset: layout, counts, the retouch, idempotence and the CLI."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "data_preparation" / "make_demo_dataset.py"

_spec = importlib.util.spec_from_file_location("make_demo_dataset", SCRIPT)
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

EXPECTED_COUNTS = {
    "train/source": 60,
    "train/target": 60,
    "train_paired/source": 60,
    "train_paired/target": 60,
    "val/source": 5,
    "val/target": 5,
    "test/source": 5,
    "test/target": 5,
}


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr is not None, path
    assert bgr.dtype == np.uint8 and bgr.ndim == 3 and bgr.shape[2] == 3, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _digest(root: Path) -> dict:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    counts = demo.make_demo_dataset(out, seed=0)
    assert counts == EXPECTED_COUNTS
    return out


def test_layout_and_counts(dataset: Path):
    assert demo.count_images(dataset) == EXPECTED_COUNTS
    assert sorted(p.name for p in dataset.iterdir()) == [
        "manifest.json",
        "test",
        "train",
        "train_paired",
        "val",
    ]
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["seed"] == 0 and len(manifest["files"]) == sum(EXPECTED_COUNTS.values())
    assert not list(dataset.parent.glob(".demo.*"))  # no staging folders left behind


def test_training_images_are_large_enough_and_not_paired_by_name(dataset: Path):
    source_names = {p.name for p in (dataset / "train/source").glob("*.png")}
    target_names = {p.name for p in (dataset / "train/target").glob("*.png")}
    assert not source_names & target_names
    for path in (dataset / "train").rglob("*.png"):
        h, w = _rgb(path).shape[:2]
        assert 256 <= h <= 384 and 256 <= w <= 384, (path, h, w)


def test_training_target_domain_is_warmer_and_more_saturated(dataset: Path):
    def stats(folder: str):
        imgs = [_rgb(p).astype(np.float64) / 255 for p in (dataset / folder).glob("*.png")]
        pixels = np.concatenate([img.reshape(-1, 3) for img in imgs])
        red_over_blue = pixels[:, 0].mean() / pixels[:, 2].mean()
        chroma = (pixels.max(1) - pixels.min(1)).mean()
        return red_over_blue, chroma

    source_rb, source_chroma = stats("train/source")
    target_rb, target_chroma = stats("train/target")
    assert target_rb > source_rb * 1.1
    assert target_chroma > source_chroma * 1.1


def test_paired_training_crops_are_aligned_retouches_from_the_training_part(dataset: Path):
    sources = sorted((dataset / "train_paired" / "source").glob("*.png"))
    targets = sorted((dataset / "train_paired" / "target").glob("*.png"))
    assert [p.name for p in sources] == [p.name for p in targets]
    unpaired = {_rgb(p).tobytes() for p in (dataset / "train" / "source").glob("*.png")}
    for s, t in zip(sources, targets):
        source = _rgb(s)
        assert 256 <= min(source.shape[:2]) and max(source.shape[:2]) <= 384, s.name
        again = np.round(demo.retouch(source.astype(np.float64) / 255) * 255).astype(np.int16)
        assert np.abs(again - _rgb(t).astype(np.int16)).max() <= 1, s.name
        assert source.tobytes() not in unpaired  # crops of their own


def test_val_and_test_pairs_share_names_and_sizes(dataset: Path):
    for split in ("val", "test"):
        sources = sorted((dataset / split / "source").glob("*.png"))
        targets = sorted((dataset / split / "target").glob("*.png"))
        assert [p.name for p in sources] == [p.name for p in targets]
        for s, t in zip(sources, targets):
            assert _rgb(s).shape == _rgb(t).shape
            assert _rgb(s).shape[0] % 8 == 0 and _rgb(s).shape[1] % 8 == 0


def test_held_out_pieces_are_the_left_strip_of_each_photo(dataset: Path):
    for name in demo.PHOTOS:
        photo = demo.load_photo(name)
        height, width = photo.shape[:2]
        strip = photo[:, : int(width * demo.HELD_OUT_FRACTION)]
        for split, rows in (("val", strip[: height // 2]), ("test", strip[height // 2 :])):
            piece = _rgb(dataset / split / "source" / f"{name}.png")
            assert piece.shape[0] > rows.shape[0] - 8 and piece.shape[1] > rows.shape[1] - 8
            np.testing.assert_array_equal(piece, rows[: piece.shape[0], : piece.shape[1]])


def test_val_target_is_the_retouch_of_val_source(dataset: Path):
    for path in sorted((dataset / "val" / "source").glob("*.png")):
        source = _rgb(path).astype(np.float64) / 255
        target = _rgb(dataset / "val" / "target" / path.name).astype(np.int16)
        again = np.round(demo.retouch(source) * 255).astype(np.int16)
        assert np.abs(again - target).max() <= 1, path.name


def test_identity_psnr_on_val_is_well_below_30_db(dataset: Path):
    psnrs = []
    for path in sorted((dataset / "val" / "source").glob("*.png")):
        source = _rgb(path).astype(np.float64)
        target = _rgb(dataset / "val" / "target" / path.name).astype(np.float64)
        psnrs.append(10 * np.log10(255.0**2 / np.mean((source - target) ** 2)))
    assert np.all(np.isfinite(psnrs))
    assert np.mean(psnrs) < 26.0


def test_retouch_formulas_on_known_values():
    # Mid grey: WB (0.53, 0.5, 0.44) -> gamma 1/1.25 -> S-curve -> saturation 1.25 about luma.
    x = np.full((1, 1, 3), 0.5)
    wb = 0.5 * np.array([1.06, 1.00, 0.88])
    y = wb ** (1 / 1.25)
    tone = y + 0.5 * y * (1 - y) * (2 * y - 1)
    luma = tone @ np.array([0.299, 0.587, 0.114])
    expected = luma + 1.25 * (tone - luma)
    np.testing.assert_allclose(demo.retouch(x)[0, 0], expected, rtol=1e-12)
    # Black and white stay (white loses blue through the white balance).
    np.testing.assert_allclose(demo.retouch(np.zeros((1, 1, 3)))[0, 0], 0.0)
    assert demo.retouch(np.ones((1, 1, 3)))[0, 0, 0] == 1.0
    # The tone curve is monotonic: a grey ramp stays ordered in every channel.
    ramp = np.linspace(0, 1, 256)[:, None, None] * np.ones((1, 1, 3))
    assert np.all(np.diff(demo.retouch(ramp)[:, 0, :], axis=0) >= 0)
    with pytest.raises(ValueError, match="uint8"):
        demo.retouch(np.zeros((2, 2, 3), dtype=np.uint8))


def test_complete_dataset_is_left_alone(dataset: Path, capsys):
    before = _digest(dataset)
    manifest_mtime = (dataset / "manifest.json").stat().st_mtime_ns
    assert demo.make_demo_dataset(dataset, seed=0) == EXPECTED_COUNTS
    assert "complete" in capsys.readouterr().out
    assert (dataset / "manifest.json").stat().st_mtime_ns == manifest_mtime
    assert _digest(dataset) == before


def test_same_seed_is_reproducible_and_seed_changes_only_training_crops(
    dataset: Path, tmp_path: Path
):
    again = tmp_path / "same"
    demo.make_demo_dataset(again, seed=0)
    assert _digest(again) == _digest(dataset)

    other = tmp_path / "other"
    demo.make_demo_dataset(other, seed=1)
    reference, changed = _digest(dataset), _digest(other)
    held_out = [k for k in reference if not k.startswith("train")]
    assert all(reference[k] == changed[k] for k in held_out)
    train_keys = [k for k in reference if k.startswith("train")]
    assert sum(reference[k] != changed[k] for k in train_keys) > len(train_keys) // 2


def test_incomplete_dataset_is_rebuilt_and_overwrite_rebuilds(tmp_path: Path):
    out = tmp_path / "demo"
    demo.make_demo_dataset(out, seed=0)
    (out / "val" / "target" / "coffee.png").unlink()
    assert not demo.is_complete(out)
    assert demo.make_demo_dataset(out, seed=0) == EXPECTED_COUNTS
    assert demo.is_complete(out)
    demo.make_demo_dataset(out, seed=3, overwrite=True)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="mine.*did not create"):
            demo.make_demo_dataset(out, seed=0, overwrite=overwrite)
    assert (out / "notes.txt").read_text() == "keep me"


def test_command_line(tmp_path: Path):
    out = tmp_path / "cli"
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, str(SCRIPT), "--output", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    first = run("--seed", "2")
    assert first.returncode == 0, first.stderr
    assert "written" in first.stdout and demo.count_images(out) == EXPECTED_COUNTS
    second = run("--seed", "2")
    assert second.returncode == 0 and "complete" in second.stdout
    third = run("--overwrite")
    assert third.returncode == 0, third.stderr
    assert json.loads((out / "manifest.json").read_text())["seed"] == 0
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    failed = subprocess.run(
        [sys.executable, str(SCRIPT), "--output", str(blocked)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1 and "blocked" in failed.stderr
