"""UnPairedImageDataset: independent, repeatable target draws and independent crops."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lptn.data import build_dataset


@pytest.fixture
def domains(tmp_path: Path, noise_image, save_rgb):
    """6 source images and 9 target images, of varied sizes."""
    rng = np.random.default_rng(11)
    src, tgt = tmp_path / "src", tmp_path / "tgt"
    for i in range(6):
        save_rgb(src / f"s{i}.png", noise_image(rng, 30 + i, 40))
    for i in range(9):
        save_rgb(tgt / f"t{i}.jpg", noise_image(rng, 36, 28 + i))
    return src, tgt


def _opt(src: Path, tgt: Path, **extra) -> dict:
    return {
        "type": "UnPairedImageDataset",
        "dataroot_lq": str(src),
        "dataroot_gt": str(tgt),
        "io_backend": {"type": "disk"},
        "phase": "train",
        "gt_size": 16,
        "if_fix_size": True,
        "use_flip": True,
        "use_rot": True,
        **extra,
    }


def test_items_and_length(domains) -> None:
    src, tgt = domains
    ds = build_dataset(_opt(*domains), "datasets.train", seed=0)
    assert len(ds) == 6
    item = ds[3]
    assert set(item) == {"lq", "ref", "lq_path", "ref_path"}
    assert item["lq"].shape == item["ref"].shape == (3, 16, 16)
    assert item["lq_path"] == str(src / "s3.png")
    assert Path(item["ref_path"]).parent == tgt


def test_ref_is_drawn_independently_of_the_source_index(
    tmp_path: Path, noise_image, save_rgb
) -> None:
    rng = np.random.default_rng(12)
    for side in ("src", "tgt"):
        for i in range(5):
            save_rgb(tmp_path / side / f"{i}.png", noise_image(rng, 16, 16))
    ds = build_dataset(_opt(tmp_path / "src", tmp_path / "tgt"), "datasets.train", seed=1)
    refs = [ds.ref_index(i) for i in range(500)]
    # Paired by index would give ref == index % 5 every time; independent draws match ~1/5.
    same = sum(r == i % 5 for i, r in enumerate(refs))
    assert 50 < same < 160
    counts = Counter(refs)
    assert set(counts) == set(range(5)) and min(counts.values()) > 60
    # each source image meets several target images
    for src_index in range(5):
        assert len({refs[i] for i in range(src_index, 500, 5)}) >= 4
    assert ds[7]["ref_path"].endswith(f"{refs[7]}.png")


def test_same_seed_same_sequence_and_epochs_differ(domains) -> None:
    a = build_dataset(_opt(*domains), "datasets.train", seed=42)
    b = build_dataset(_opt(*domains), "datasets.train", seed=42)
    seq = lambda ds: [ds.ref_index(i) for i in range(60)]  # noqa: E731
    assert seq(a) == seq(b)
    for i in (0, 5):
        x, y = a[i], b[i]
        assert torch.equal(x["lq"], y["lq"]) and torch.equal(x["ref"], y["ref"])
    c = build_dataset(_opt(*domains), "datasets.train", seed=43)
    assert seq(c) != seq(a)
    b.set_epoch(1)
    assert seq(b) != seq(a)
    assert not torch.equal(a[0]["lq"], b[0]["lq"])
    b.set_epoch(0)
    assert seq(b) == seq(a)


def test_crops_of_source_and_target_are_independent(tmp_path: Path, noise_image, save_rgb) -> None:
    # Same image on both sides: identical crops every time would mean shared randomness.
    img = noise_image(np.random.default_rng(13), 40, 40)
    save_rgb(tmp_path / "src" / "x.png", img)
    save_rgb(tmp_path / "tgt" / "x.png", img)
    ds = build_dataset(_opt(tmp_path / "src", tmp_path / "tgt"), "datasets.train", seed=2)
    equal = sum(torch.equal(ds[i]["lq"], ds[i]["ref"]) for i in range(20))
    assert equal <= 2


def test_non_train_phase_returns_full_images(domains) -> None:
    ds = build_dataset(_opt(*domains, phase="val"), "datasets.val")
    item = ds[2]
    assert item["lq"].shape == (3, 32, 40)
    assert item["ref"].shape[1] == 36


def test_small_target_image_is_an_error_naming_it(tmp_path: Path, noise_image, save_rgb) -> None:
    rng = np.random.default_rng(14)
    save_rgb(tmp_path / "src" / "big.png", noise_image(rng, 40, 40))
    save_rgb(tmp_path / "tgt" / "small.png", noise_image(rng, 12, 40))
    ds = build_dataset(_opt(tmp_path / "src", tmp_path / "tgt"), "datasets.train")
    with pytest.raises(ValueError, match=r"small\.png.*12x40"):
        ds[0]
    ds = build_dataset(
        _opt(tmp_path / "src", tmp_path / "tgt", small_image="pad"), "datasets.train"
    )
    assert ds[0]["ref"].shape == (3, 16, 16)


def test_gt_size_required_for_fixed_size_training(domains) -> None:
    opt = _opt(*domains)
    del opt["gt_size"]
    with pytest.raises(ValueError, match="datasets.train.gt_size"):
        build_dataset(opt, "datasets.train")
    opt["if_fix_size"] = False
    assert build_dataset(opt, "datasets.train")[0]["lq"].shape[1] in (30, 40)


def test_lmdb_backend(domains, tmp_path: Path, create_lmdb_script) -> None:
    src, tgt = domains
    make = create_lmdb_script.make_lmdb_from_folder
    src_db = make(src, tmp_path / "src.lmdb", progress=False)
    tgt_db = make(tgt, tmp_path / "tgt.lmdb", progress=False)
    disk = build_dataset(_opt(src, tgt), "datasets.train", seed=9)
    lmdb_ds = build_dataset(
        _opt(src_db, tgt_db, io_backend={"type": "lmdb"}), "datasets.train", seed=9
    )
    for i in range(6):
        a, b = disk[i], lmdb_ds[i]
        assert b["lq_path"] == Path(a["lq_path"]).stem
        assert b["ref_path"] == Path(a["ref_path"]).stem
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["ref"], b["ref"])
