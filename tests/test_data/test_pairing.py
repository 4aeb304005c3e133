"""Pairing inputs and targets as photographers name them, and targets exported at other sizes."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from photo_files import fivek_upright, save_turned_jpeg

from lptn.data import build_dataset

NAMES = ("a0212", "a0481", "a0535")


def _paired(lq: Path, gt: Path, **extra) -> dict:
    return {
        "type": "PairedImageDataset",
        "dataroot_lq": str(lq),
        "dataroot_gt": str(gt),
        "io_backend": {"type": "disk"},
        "phase": "val",
        **extra,
    }


def _export(fivek: Path, folder: Path, pattern: str, ext: str, side: str) -> None:
    """Write FiveK photos as ``pattern.format(name) + ext`` (cv2, 8-bit)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        rgb = fivek_upright(fivek, name, side)
        assert cv2.imwrite(str(folder / (pattern.format(name) + ext)), rgb[..., ::-1])


@pytest.mark.parametrize(
    "gt_pattern,gt_name",
    [("{}_edited", "{stem}_edited"), ("{}-Edit", "{stem}-Edit"), ("edited_{}", "edited_{stem}")],
)
def test_targets_named_as_editors_export_them_pair_with_camera_files(
    tmp_path: Path, fivek_sample_dir: Path, gt_pattern: str, gt_name: str
) -> None:
    _export(fivek_sample_dir, tmp_path / "lq", "{}", ".JPG", "source")  # camera: upper case
    _export(fivek_sample_dir, tmp_path / "gt", gt_pattern, ".jpg", "target")
    ds = build_dataset(_paired(tmp_path / "lq", tmp_path / "gt", gt_name=gt_name), "datasets.val")
    assert len(ds) == 3
    for i, name in enumerate(NAMES):
        item = ds[i]
        assert Path(item["lq_path"]).name == f"{name}.JPG"
        assert Path(item["gt_path"]).name == gt_pattern.format(name) + ".jpg"


def test_inputs_and_targets_of_other_formats_pair_by_stem(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    _export(fivek_sample_dir, tmp_path / "lq", "{}", ".png", "source")
    _export(fivek_sample_dir, tmp_path / "gt", "{}_edited", ".tif", "target")
    ds = build_dataset(
        _paired(tmp_path / "lq", tmp_path / "gt", gt_name="{stem}_edited"), "datasets.val"
    )
    assert [Path(ds[i]["gt_path"]).suffix for i in range(3)] == [".tif"] * 3


def test_every_unmatched_file_is_listed_on_both_sides_with_a_hint(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    _export(fivek_sample_dir, tmp_path / "lq", "{}", ".jpg", "source")
    _export(fivek_sample_dir, tmp_path / "gt", "{}_edited", ".jpg", "target")
    (tmp_path / "lq" / "a0535.jpg").rename(tmp_path / "lq" / "IMG_9999.jpg")
    with pytest.raises(ValueError) as info:
        build_dataset(_paired(tmp_path / "lq", tmp_path / "gt"), "datasets.val")
    message = str(info.value)
    # nothing pairs without gt_name: all three targets and all three inputs are named at once
    for name in ("a0212_edited.jpg", "a0481_edited.jpg", "a0535_edited.jpg"):
        assert name in message
    for name in ("a0212.jpg", "a0481.jpg", "IMG_9999.jpg"):
        assert name in message
    assert "gt_name: '{stem}_edited'" in message
    with pytest.raises(ValueError) as info:
        build_dataset(
            _paired(tmp_path / "lq", tmp_path / "gt", gt_name="{stem}_edited"), "datasets.val"
        )
    message = str(info.value)
    assert "a0535_edited.jpg" in message and "IMG_9999.jpg" in message
    assert "a0212" not in message


def test_a_raw_and_a_jpeg_of_one_photo_on_one_side_are_named(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    _export(fivek_sample_dir, tmp_path / "lq", "{}", ".jpg", "source")
    _export(fivek_sample_dir, tmp_path / "gt", "{}", ".jpg", "target")
    shutil.copy(tmp_path / "lq" / "a0212.jpg", tmp_path / "lq" / "a0212.png")
    with pytest.raises(ValueError, match=r"a0212\.jpg, a0212\.png \(one photo per name"):
        build_dataset(_paired(tmp_path / "lq", tmp_path / "gt"), "datasets.val")


@pytest.mark.parametrize("dataset_type", ["PairedImageDataset", "UnPairedImageDataset"])
def test_the_same_folder_on_both_sides_is_refused(fivek_sample_dir: Path, dataset_type) -> None:
    source = fivek_sample_dir / "source"
    spelt_otherwise = fivek_sample_dir / "target" / ".." / "source"
    opt = _paired(source, spelt_otherwise, type=dataset_type)
    with pytest.raises(ValueError, match="are the same folder") as info:
        build_dataset(opt, "datasets.val")
    assert "datasets.val.dataroot_lq" in str(info.value) and str(source) in str(info.value)


def test_the_original_lptn_option_files_pair_the_fivek_sample(fivek_sample_dir: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "options" / "train" / "LPTN"
    block = yaml.safe_load((root / "train_FiveK.yml").read_text())["datasets"]["train"]
    assert block["filename_tmpl"] == "{}"
    block.update(  # the sample as folders; the file's LMDBs hold the full FiveK set
        dataroot_lq=str(fivek_sample_dir / "source"),
        dataroot_gt=str(fivek_sample_dir / "target"),
        io_backend={"type": "disk"},
    )
    assert len(build_dataset(block, "datasets.train")) == 23


def test_filename_tmpl_and_lq_name_cannot_both_name_the_inputs(make_pair_dirs) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=("a",))
    opt = _paired(lq_dir, gt_dir, filename_tmpl="{}_in", lq_name="{stem}_in")
    with pytest.raises(ValueError, match="filename_tmpl and datasets.val.lq_name"):
        build_dataset(opt, "datasets.val")
    with pytest.raises(ValueError, match=r"datasets.val.gt_name: 'edited' must hold \{stem\}"):
        build_dataset(_paired(lq_dir, gt_dir, gt_name="edited"), "datasets.val")
    with pytest.raises(ValueError, match="datasets.val.pair_size must be one of error, resize_gt"):
        build_dataset(_paired(lq_dir, gt_dir, pair_size="stretch"), "datasets.val")


def _full_size_target(tmp_path: Path, fivek: Path, scale: float) -> Path:
    """lq: the FiveK source; gt: its target exported at ``scale`` times the size."""
    _export(fivek, tmp_path / "lq", "{}", ".png", "source")
    (tmp_path / "gt").mkdir()
    for name in NAMES:
        rgb = fivek_upright(fivek, name, "target")
        h, w = rgb.shape[:2]
        big = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(tmp_path / "gt" / f"{name}.png"), big[..., ::-1])
    return tmp_path


def test_a_target_at_another_size_is_an_error_by_default(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    _full_size_target(tmp_path, fivek_sample_dir, 2.0)
    ds = build_dataset(_paired(tmp_path / "lq", tmp_path / "gt"), "datasets.val")
    with pytest.raises(ValueError, match=r"differ in size: .*a0212.png is 1024x682.*512x341"):
        ds[0]


def test_pair_size_resize_gt_brings_the_target_to_the_input_size(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    _full_size_target(tmp_path, fivek_sample_dir, 2.0)
    ds = build_dataset(
        _paired(tmp_path / "lq", tmp_path / "gt", pair_size="resize_gt"), "datasets.val"
    )
    item = ds[0]
    assert item["gt"].shape == item["lq"].shape == (3, 512, 341)
    original = torch.from_numpy(fivek_upright(fivek_sample_dir, "a0212", "target"))
    error = (item["gt"].permute(1, 2, 0) * 255 - original.float()).abs().mean()
    assert float(error) < 3.0  # the export, shrunk back: the same picture


def test_pair_size_resize_gt_refuses_a_crop(tmp_path: Path, fivek_sample_dir: Path) -> None:
    _export(fivek_sample_dir, tmp_path / "lq", "{}", ".png", "source")
    (tmp_path / "gt").mkdir()
    for name in NAMES:
        rgb = fivek_upright(fivek_sample_dir, name, "target")
        cv2.imwrite(str(tmp_path / "gt" / f"{name}.png"), rgb[:-40, :, ::-1])
    ds = build_dataset(
        _paired(tmp_path / "lq", tmp_path / "gt", pair_size="resize_gt"), "datasets.val"
    )
    with pytest.raises(ValueError, match="differ in shape, not only in size"):
        ds[0]


def test_resize_gt_on_a_sideways_input_compares_upright_sizes(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    upright = fivek_upright(fivek_sample_dir, "a0212")
    save_turned_jpeg(tmp_path / "lq" / "a0212.jpg", upright)
    (tmp_path / "gt").mkdir()
    target = fivek_upright(fivek_sample_dir, "a0212", "target")
    big = cv2.resize(target, (682, 1024), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(tmp_path / "gt" / "a0212_edited.png"), big[..., ::-1])
    ds = build_dataset(
        _paired(tmp_path / "lq", tmp_path / "gt", gt_name="{stem}_edited", pair_size="resize_gt"),
        "datasets.val",
    )
    assert ds[0]["gt"].shape == ds[0]["lq"].shape == (3, 512, 341)
    assert np.isfinite(ds[0]["gt"].numpy()).all()


def test_resize_gt_on_the_device_augmentation_path(tmp_path: Path, fivek_sample_dir: Path) -> None:
    _full_size_target(tmp_path, fivek_sample_dir, 1.5)
    opt = _paired(
        tmp_path / "lq",
        tmp_path / "gt",
        phase="train",
        gt_size=64,
        pair_size="resize_gt",
        augment_on_device=True,
        io_backend={"type": "memory"},
    )
    ds = build_dataset(opt, "datasets.train")
    item = ds[0]
    assert item["gt"].shape == item["lq"].shape == (512, 341, 3)
    assert item["gt"].dtype == torch.uint8
    assert ds.survey_images(9, "network_g.num_high=3").problems == []


def _photo_samples():
    """tests/test_photo/photo_samples.py (its DNG maker), imported from its path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "test_photo" / "photo_samples.py"
    spec = importlib.util.spec_from_file_location("_lptn_photo_samples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_raw_input_pairs_with_its_jpeg_export(tmp_path: Path, fivek_sample_dir: Path) -> None:
    pytest.importorskip("rawpy", reason="RAW inputs need the 'raw' extra (pip install 'lptn[raw]')")
    pytest.importorskip("exiv2", reason="the test DNGs get their Exif sub-IFD from exiv2")
    samples = _photo_samples()
    scene = np.ascontiguousarray(fivek_upright(fivek_sample_dir, "a0535")[:256, :384])
    (tmp_path / "lq").mkdir()
    (tmp_path / "lq" / "IMG_0001.DNG").write_bytes(samples.bayer_dng(scene, 6))  # held sideways
    (tmp_path / "gt").mkdir()
    cv2.imwrite(str(tmp_path / "gt" / "IMG_0001_edited.jpg"), scene[..., ::-1])
    opt = _paired(tmp_path / "lq", tmp_path / "gt", gt_name="{stem}_edited", phase="train")
    ds = build_dataset({**opt, "gt_size": 128}, "datasets.train")
    survey = ds.survey_images(9, "network_g.num_high=3")
    assert survey.problems == [] and list(survey.sample_sizes) == [(256, 384)]
    item = ds[0]
    assert item["lq"].shape == item["gt"].shape == (3, 128, 128)
