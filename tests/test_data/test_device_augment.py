"""Cropping/flipping on the device (here the CPU: the same torch code) equals the CPU
transforms for the same draws; the loader/prefetcher plumbing; val-set sharding."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from lptn.data import build_dataloader, build_dataset
from lptn.data.data_loader import ShardSampler, build_prefetcher
from lptn.data.device_augment import (
    CropFlip,
    apply_on_device,
    collate_deferred,
    crop_flip_to_float,
    draw_crop_flip,
    pixels_to_tensor,
)
from lptn.data.image_io import image_to_tensor, to_float
from lptn.data.transforms import augment, paired_random_crop, random_crop

CPU = torch.device("cpu")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_crop_flip_equals_the_cpu_transforms_for_the_same_draws(dtype, noise_image) -> None:
    rng = np.random.default_rng(0)
    img = noise_image(rng, 23, 31, dtype)
    for seed, (use_flip, use_rot) in itertools.product(
        range(12), [(True, True), (True, False), (False, False)]
    ):
        cpu_rng, dev_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        expected = augment([random_crop(img, 16, cpu_rng)], use_flip, use_rot, cpu_rng)[0]
        op = draw_crop_flip(23, 31, 16, use_flip, use_rot, dev_rng)
        out = crop_flip_to_float(pixels_to_tensor(img), op)
        assert torch.equal(out, image_to_tensor(to_float(expected))), (seed, op)
        assert cpu_rng.random() == dev_rng.random()  # the streams advanced alike
    # every flip/transpose combination, whole image (no crop)
    for flags in itertools.product([False, True], repeat=3):
        op = CropFlip(0, 0, 23, 31, *flags)
        view = img
        if flags[0]:
            view = view[:, ::-1]
        if flags[1]:
            view = view[::-1]
        if flags[2]:
            view = view.transpose(1, 0, 2)
        assert torch.equal(
            crop_flip_to_float(pixels_to_tensor(img), op),
            image_to_tensor(to_float(np.ascontiguousarray(view))),
        )
    assert CropFlip.from_values(CropFlip(1, 2, 3, 4, True, False, True).to_tensor()) == CropFlip(
        1, 2, 3, 4, True, False, True
    )


def test_paired_draws_match_paired_random_crop(noise_image) -> None:
    rng = np.random.default_rng(3)
    gt, lq = noise_image(rng, 20, 30), noise_image(rng, 20, 30)
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    gt_crop, lq_crop = paired_random_crop(gt, lq, 12, a)
    gt_crop, lq_crop = augment([gt_crop, lq_crop], True, True, a)
    op = draw_crop_flip(20, 30, 12, True, True, b)
    assert torch.equal(
        crop_flip_to_float(pixels_to_tensor(gt), op), image_to_tensor(to_float(gt_crop))
    )
    assert torch.equal(
        crop_flip_to_float(pixels_to_tensor(lq), op), image_to_tensor(to_float(lq_crop))
    )


def _train_opt(kind: str, lq: Path, gt: Path, backend: str, **extra) -> dict:
    return {
        "type": kind,
        "dataroot_lq": str(lq),
        "dataroot_gt": str(gt),
        "io_backend": {"type": backend},
        "phase": "train",
        "gt_size": 24,
        "use_flip": True,
        "use_rot": True,
        "batch_size_per_gpu": 3,
        "dataset_enlarge_ratio": 2,
        **extra,
    }


def _batches(opt: dict, epoch: int) -> list:
    dataset = build_dataset(opt, "datasets.train", seed=11)
    loader = build_dataloader(dataset, opt, seed=11, phase="train")
    loader.sampler.set_epoch(epoch)
    return list(build_prefetcher(loader, opt, CPU))


@pytest.mark.parametrize("kind", ["PairedImageDataset", "UnPairedImageDataset"])
@pytest.mark.parametrize("backend,workers", [("disk", 0), ("memory", 0), ("memory", 2)])
def test_training_batches_are_the_same_with_augmentation_on_the_device(
    make_pair_dirs, kind: str, backend: str, workers: int
) -> None:
    # One image smaller than the crop, padded by small_image: pad on both paths.
    lq, gt, _ = make_pair_dirs(names=("a", "b", "c", "d"), size=(30, 37))
    small_lq, small_gt, _ = make_pair_dirs(names=("e",), size=(20, 26), sub="small")
    for folder, small in ((lq, small_lq), (gt, small_gt)):
        (small / "e.png").rename(folder / "e.png")
    cpu_opt = _train_opt(kind, lq, gt, "disk", small_image="pad")
    # prefetch_mode cuda on a CPU device: no side stream, augmentation on "the device" (auto).
    dev_opt = _train_opt(
        kind, lq, gt, backend, small_image="pad", prefetch_mode="cuda", num_worker_per_gpu=workers
    )
    assert build_dataset(dev_opt, "datasets.train").augment_on_device
    for epoch in (0, 1):
        expected, got = _batches(cpu_opt, epoch), _batches(dev_opt, epoch)
        assert len(expected) == len(got) == 3
        for x, y in zip(expected, got):
            assert x.keys() == y.keys()
            for key in x:
                if isinstance(x[key], torch.Tensor):
                    assert x[key].shape == (3, 3, 24, 24) and torch.equal(x[key], y[key]), key
                else:
                    assert x[key] == y[key]


def test_device_items_view_the_shared_buffer(make_pair_dirs) -> None:
    lq, gt, arrays = make_pair_dirs(names=("a", "b"), size=(30, 30))
    opt = _train_opt("PairedImageDataset", lq, gt, "memory", augment_on_device=True)
    dataset = build_dataset(opt, "datasets.train", seed=1)
    item = dataset[1]
    buffer = dataset.lq_backend.buffer
    # No copy: the item's pixels are the buffer's (they cross worker boundaries as a handle).
    assert item["lq"].untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
    assert torch.equal(item["lq"], torch.from_numpy(arrays["b"]))
    assert torch.equal(item["lq_op"], item["gt_op"]) and item["lq_op"].shape == (7,)
    batch = collate_deferred([dataset[0], dataset[1]])
    assert isinstance(batch["lq"], list) and batch["gt_op"].shape == (2, 7)
    out = apply_on_device(batch, CPU)
    assert out["lq"].shape == (2, 3, 24, 24) and out["lq"].dtype == torch.float32
    assert "lq_op" not in out and out["lq_path"] == batch["lq_path"]


def test_augment_on_device_option(make_pair_dirs) -> None:
    lq, gt, _ = make_pair_dirs(names=("a",), size=(30, 30))
    base = _train_opt("UnPairedImageDataset", lq, gt, "disk")
    assert not build_dataset(base, "datasets.train").augment_on_device
    assert build_dataset(dict(base, prefetch_mode="npu"), "datasets.train").augment_on_device
    assert not build_dataset(
        dict(base, prefetch_mode="cuda", augment_on_device=False), "datasets.train"
    ).augment_on_device
    val = dict(base, phase="val", prefetch_mode="cuda")
    assert not build_dataset(val, "datasets.val").augment_on_device  # val items stay whole
    with pytest.raises(ValueError, match="datasets.train.augment_on_device"):
        build_dataset(dict(base, augment_on_device="yes"), "datasets.train")


def test_shard_sampler_splits_an_odd_val_set_without_repeats(make_pair_dirs) -> None:
    lq, gt, _ = make_pair_dirs(names=tuple("abcde"), size=(12, 12))
    dataset = build_dataset(
        {
            "type": "PairedImageDataset",
            "dataroot_lq": str(lq),
            "dataroot_gt": str(gt),
            "phase": "val",
        },
        "datasets.val",
    )
    shards = [list(ShardSampler(dataset, 2, r)) for r in (0, 1)]
    assert shards == [[0, 2, 4], [1, 3]]
    names = [
        [
            b["lq_path"][0][-5:]
            for b in build_dataloader(dataset, {}, seed=0, num_replicas=2, rank=r, phase="val")
        ]
        for r in (0, 1)
    ]
    assert names == [["a.png", "c.png", "e.png"], ["b.png", "d.png"]]
    with pytest.raises(ValueError, match="rank 2"):
        ShardSampler(dataset, 2, 2)
