"""PairedImageDataset: FiveK layout, pairing by name, errors, aligned training crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lptn.data import DATASET_REGISTRY, build_dataset
from lptn.data.image_io import read_image


def _is_inverse(gt: torch.Tensor, lq: torch.Tensor) -> bool:
    """gt == 255 - lq on the 8-bit values (float division is not exact enough for ==)."""
    return torch.equal(torch.round(gt * 255), 255 - torch.round(lq * 255))


def _opt(lq: Path, gt: Path, **extra) -> dict:
    return {
        "type": "PairedImageDataset",
        "name": "t",
        "dataroot_lq": str(lq),
        "dataroot_gt": str(gt),
        "io_backend": {"type": "disk"},
        **extra,
    }


def test_registered() -> None:
    assert "PairedImageDataset" in DATASET_REGISTRY


def test_fivek_sample_items_are_the_files(fivek_sample_dir: Path) -> None:
    ds = build_dataset(
        _opt(fivek_sample_dir / "source", fivek_sample_dir / "target", phase="test"),
        "datasets.test",
    )
    assert len(ds) == 23
    for index in (0, 22):
        item = ds[index]
        assert set(item) == {"lq", "gt", "lq_path", "gt_path"}
        assert Path(item["lq_path"]).parent == fivek_sample_dir / "source"
        assert Path(item["gt_path"]).name == Path(item["lq_path"]).name
        lq = read_image(item["lq_path"])
        assert item["lq"].dtype == torch.float32 and item["lq"].shape == (3, *lq.shape[:2])
        expected = torch.from_numpy(lq.astype(np.float32) / 255).permute(2, 0, 1)
        assert torch.equal(item["lq"], expected)
        assert 0.0 <= float(item["gt"].min()) and float(item["gt"].max()) <= 1.0


def test_unmatched_files_are_listed(make_pair_dirs) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=("a", "b", "c"))
    (gt_dir / "b.png").rename(gt_dir / "b_renamed.png")
    with pytest.raises(ValueError) as info:
        build_dataset(_opt(lq_dir, gt_dir, phase="val"), "datasets.val")
    message = str(info.value)
    assert "b_renamed.png" in message and "b.png" in message
    assert str(lq_dir) in message and str(gt_dir) in message
    assert "datasets.val.dataroot_lq" in message


def test_filename_tmpl_maps_gt_names_to_lq_names(make_pair_dirs) -> None:
    lq_dir, gt_dir, arrays = make_pair_dirs(names=("x", "y"))
    for name in ("x", "y"):
        (lq_dir / f"{name}.png").rename(lq_dir / f"{name}_input.png")
    with pytest.raises(ValueError, match="without a partner"):
        build_dataset(_opt(lq_dir, gt_dir, phase="val"), "datasets.val")
    ds = build_dataset(_opt(lq_dir, gt_dir, phase="val", filename_tmpl="{}_input"), "datasets.val")
    item = ds[1]
    assert item["lq_path"].endswith("y_input.png") and item["gt_path"].endswith("y.png")
    assert _is_inverse(item["gt"], item["lq"])
    with pytest.raises(ValueError, match="datasets.val.filename_tmpl"):
        build_dataset(_opt(lq_dir, gt_dir, phase="val", filename_tmpl="{0}_{1}"), "datasets.val")


def test_different_sizes_name_both_files(make_pair_dirs, noise_image, save_rgb) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=("a",), size=(20, 20))
    save_rgb(gt_dir / "a.png", noise_image(np.random.default_rng(0), 20, 21))
    ds = build_dataset(_opt(lq_dir, gt_dir, phase="val"), "datasets.val")
    with pytest.raises(ValueError) as info:
        ds[0]
    assert str(lq_dir / "a.png") in str(info.value) and str(gt_dir / "a.png") in str(info.value)
    assert "20x21" in str(info.value)


def test_bad_options_name_their_key(make_pair_dirs, tmp_path: Path) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs()
    with pytest.raises(ValueError, match="datasets.train.io_backend.type.*disk, lmdb"):
        build_dataset(_opt(lq_dir, gt_dir, io_backend={"type": "hdf5"}), "datasets.train")
    with pytest.raises(FileNotFoundError, match="datasets.val.dataroot_lq.*missing_dir"):
        build_dataset(_opt(tmp_path / "missing_dir", gt_dir, phase="val"), "datasets.val")
    with pytest.raises(ValueError, match="datasets.val.dataroot_gt is required"):
        build_dataset({"type": "PairedImageDataset", "dataroot_lq": str(lq_dir)}, "datasets.val")
    with pytest.raises(KeyError, match="datasets.train.type.*PairedImageDataset"):
        build_dataset(_opt(lq_dir, gt_dir, type="PairedImagesDataset"), "datasets.train")
    with pytest.raises(ValueError, match="datasets.train.gt_size"):
        build_dataset(_opt(lq_dir, gt_dir, phase="train", gt_size=-3), "datasets.train")
    with pytest.raises(ValueError, match="datasets.train.small_image"):
        build_dataset(
            _opt(lq_dir, gt_dir, phase="train", gt_size=8, small_image="crop"), "datasets.train"
        )


def test_training_crops_stay_aligned(make_pair_dirs) -> None:
    lq_dir, gt_dir, arrays = make_pair_dirs(size=(40, 52))
    ds = build_dataset(
        _opt(lq_dir, gt_dir, phase="train", gt_size=16, use_flip=True, use_rot=True),
        "datasets.train",
        seed=5,
    )
    crops = set()
    for index in range(40):
        item = ds[index]
        assert item["lq"].shape == item["gt"].shape == (3, 16, 16)
        # gt = 255 - lq pixelwise, so any misaligned crop/flip/rotation breaks this
        assert _is_inverse(item["gt"], item["lq"]), index
        crops.add(item["lq"].numpy().tobytes())
    assert len(crops) == 40  # crops differ between samples


def test_crop_is_reproducible_from_seed_epoch_index(make_pair_dirs) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs()
    opt = _opt(lq_dir, gt_dir, phase="train", gt_size=12, use_flip=True, use_rot=True)
    a = build_dataset(opt, "datasets.train", seed=3)
    b = build_dataset(opt, "datasets.train", seed=3)
    assert torch.equal(a[6]["lq"], b[6]["lq"])
    c = build_dataset(opt, "datasets.train", seed=4)
    assert not torch.equal(a[6]["lq"], c[6]["lq"])
    b.set_epoch(1)
    assert not torch.equal(a[6]["lq"], b[6]["lq"])
    # enlarged indices reach the same image with a different crop
    assert a[6]["lq_path"] == a[2]["lq_path"]
    assert not torch.equal(a[6]["lq"], a[2]["lq"])


def test_small_image_error_names_file_and_sizes(make_pair_dirs) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=("tiny",), size=(10, 30))
    ds = build_dataset(_opt(lq_dir, gt_dir, phase="train", gt_size=16), "datasets.train")
    with pytest.raises(ValueError) as info:
        ds[0]
    message = str(info.value)
    assert "tiny.png" in message and "10x30" in message and "16" in message
    assert "small_image" in message


@pytest.mark.parametrize("policy", ["pad", "resize"])
def test_small_image_policies_keep_pairs_aligned(make_pair_dirs, policy: str) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=("tiny",), size=(10, 30))
    ds = build_dataset(
        _opt(lq_dir, gt_dir, phase="train", gt_size=16, small_image=policy, use_flip=True),
        "datasets.train",
    )
    for index in range(4):
        item = ds[index]
        assert item["lq"].shape == (3, 16, 16)
        assert torch.allclose(item["gt"], 1 - item["lq"], atol=1.5 / 255)


def test_val_phase_returns_full_images_in_order(make_pair_dirs) -> None:
    lq_dir, gt_dir, arrays = make_pair_dirs(size=(40, 52))
    ds = build_dataset(_opt(lq_dir, gt_dir, phase="val", gt_size=16, use_flip=True), "datasets.val")
    for index, name in enumerate(sorted(arrays)):
        item = ds[index]
        assert item["lq"].shape == (3, 40, 52)
        expected = torch.from_numpy(arrays[name].astype(np.float32) / 255).permute(2, 0, 1)
        assert torch.equal(item["lq"], expected)


def test_a_block_from_a_plain_dict_gets_the_schema_defaults(fivek_sample_dir: Path) -> None:
    opt = _opt(fivek_sample_dir / "source", fivek_sample_dir / "target", phase="test")
    ds = build_dataset(opt, "datasets.test")
    # build_dataset fills the block as parse_options fills a YAML file's.
    assert ds.opt["pair_size"] == "error" and ds.opt["io_backend"]["source"] == "auto"
    assert ds.use_flip is False and ds.small_image == "error" and ds.gt_size is None
    assert "pair_size" not in opt  # the caller's dict is left as it was
