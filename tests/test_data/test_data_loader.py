"""EnlargedSampler sharding, loader options, worker seeding and the Prefetcher."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from lptn.data import EnlargedSampler, Prefetcher, build_dataloader, build_dataset
from lptn.data.data_loader import build_prefetcher


class _Range(Dataset):
    """Returns its index: shows exactly which indices a sampler/loader produced."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> int:
        assert 0 <= index < self.n  # plain datasets must get wrapped indices
        return index

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class _GlobalRandom(Dataset):
    """Draws from the global python/numpy/torch generators, which only worker seeding fixes."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor([random.random(), float(np.random.random()), float(torch.rand(()))])


@pytest.mark.parametrize("n,ratio", [(10, 3), (7, 1)])
def test_two_replicas_cover_every_index_once_per_epoch(n: int, ratio: int) -> None:
    ds = _Range(n)
    shards = [EnlargedSampler(ds, num_replicas=2, rank=r, ratio=ratio, seed=5) for r in (0, 1)]
    total = n * ratio
    for epoch in (0, 1):
        for s in shards:
            s.set_epoch(epoch)
        a, b = list(shards[0]), list(shards[1])
        assert len(a) == len(b) == len(shards[0]) == (total + 1) // 2
        merged = a + b
        if total % 2 == 0:
            assert sorted(merged) == sorted(i % n for i in range(total))
        else:  # one wrap-around pad sample keeps the shards equal for DDP
            counts = np.bincount(merged, minlength=n)
            assert counts.sum() == total + 1 and counts.min() >= ratio
    assert ds.epochs == [0, 0, 1, 1]  # set_epoch reaches the dataset


def test_enlarged_indices_for_datasets_that_accept_them(make_pair_dirs) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=("a", "b", "c"))
    ds = build_dataset(
        {
            "type": "PairedImageDataset",
            "dataroot_lq": str(lq_dir),
            "dataroot_gt": str(gt_dir),
            "phase": "train",
            "gt_size": 8,
        },
        "datasets.train",
    )
    shards = [list(EnlargedSampler(ds, 2, r, ratio=4, seed=0)) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(12))


def test_shuffle_order_depends_on_seed_and_epoch() -> None:
    ds = _Range(50)
    s = EnlargedSampler(ds, seed=1)
    first = list(s)
    assert list(s) == first and sorted(first) == list(range(50)) and first != list(range(50))
    s.set_epoch(1)
    assert list(s) != first
    assert list(EnlargedSampler(ds, seed=2)) != first
    assert list(EnlargedSampler(ds, shuffle=False)) == list(range(50))


def test_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rank 2"):
        EnlargedSampler(_Range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="dataset_enlarge_ratio"):
        EnlargedSampler(_Range(4), ratio=0)


def test_train_loader_options() -> None:
    opt = {
        "batch_size_per_gpu": 4,
        "num_worker_per_gpu": 0,
        "use_shuffle": False,
        "dataset_enlarge_ratio": 2,
    }
    loader = build_dataloader(_Range(7), opt, seed=0, phase="train")
    batches = [b.tolist() for b in loader]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 0], [1, 2, 3, 4]]  # 14 samples, last dropped
    assert isinstance(loader.sampler, EnlargedSampler)
    with pytest.raises(ValueError, match="datasets.train.batch_size_per_gpu: 16 is more"):
        build_dataloader(_Range(7), {"batch_size_per_gpu": 16}, seed=0, phase="train")
    with pytest.raises(ValueError, match="datasets.train.batch_size_per_gpu: required"):
        build_dataloader(_Range(7), {}, seed=0, phase="train")
    with pytest.raises(ValueError, match="phase"):
        build_dataloader(_Range(7), opt, seed=0, phase="training")


def test_val_loader_is_batch_one_in_order() -> None:
    loader = build_dataloader(
        _Range(5), {"batch_size_per_gpu": 8, "use_shuffle": True}, seed=0, phase="val"
    )
    assert [b.tolist() for b in loader] == [[0], [1], [2], [3], [4]]


def test_worker_seeding_is_repeatable() -> None:
    opt = {"batch_size_per_gpu": 2, "num_worker_per_gpu": 2, "use_shuffle": True}
    runs = [
        torch.cat(list(build_dataloader(_GlobalRandom(), opt, seed=s, phase="train")))
        for s in (7, 7, 8)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_dataset_samples_do_not_depend_on_worker_count(
    make_pair_dirs, tmp_path: Path, create_lmdb_script
) -> None:
    lq_dir, gt_dir, _ = make_pair_dirs(names=tuple("abcdef"), size=(24, 30))
    lq_db = create_lmdb_script.make_lmdb_from_folder(lq_dir, tmp_path / "lq.lmdb", progress=False)
    gt_db = create_lmdb_script.make_lmdb_from_folder(gt_dir, tmp_path / "gt.lmdb", progress=False)
    ds = build_dataset(
        {
            "type": "UnPairedImageDataset",
            "dataroot_lq": str(lq_db),
            "dataroot_gt": str(gt_db),
            "io_backend": {"type": "lmdb"},
            "phase": "train",
            "gt_size": 8,
            "use_flip": True,
            "use_rot": True,
        },
        "datasets.train",
        seed=3,
    )
    ds[0]  # the parent process opens the LMDB before the workers fork

    def epoch_batches(workers: int, epoch: int):
        loader = build_dataloader(
            ds,
            {"batch_size_per_gpu": 3, "num_worker_per_gpu": workers, "dataset_enlarge_ratio": 2},
            seed=3,
            phase="train",
        )
        loader.sampler.set_epoch(epoch)
        return [(b["lq"], b["ref"], b["ref_path"]) for b in loader]

    serial, parallel = epoch_batches(0, 1), epoch_batches(2, 1)
    assert len(serial) == len(parallel) == 4
    for (lq0, ref0, p0), (lq1, ref1, p1) in zip(serial, parallel):
        assert torch.equal(lq0, lq1) and torch.equal(ref0, ref1) and p0 == p1
    other_epoch = epoch_batches(2, 2)
    assert not torch.equal(serial[0][0], other_epoch[0][0])


def test_prefetcher_moves_batches_and_resets() -> None:
    class _Dicts(Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> dict:
            return {"lq": torch.full((3, 2, 2), float(i)), "lq_path": f"img{i}.png"}

    loader = build_dataloader(_Dicts(), {}, seed=0, phase="test")
    prefetcher = Prefetcher(loader, torch.device("cpu"))
    seen = []
    batch = prefetcher.next()
    while batch is not None:
        assert batch["lq"].device.type == "cpu" and batch["lq"].shape == (1, 3, 2, 2)
        seen.append((float(batch["lq"][0, 0, 0, 0]), batch["lq_path"]))
        batch = prefetcher.next()
    assert seen == [(0.0, ["img0.png"]), (1.0, ["img1.png"]), (2.0, ["img2.png"])]
    assert prefetcher.next() is None
    prefetcher.reset()
    assert [b["lq_path"] for b in prefetcher] == [["img0.png"], ["img1.png"], ["img2.png"]]
    # cuda mode on a CPU device falls back to plain copies
    assert len(list(build_prefetcher(loader, {"prefetch_mode": "cuda"}, torch.device("cpu")))) == 3
    with pytest.raises(ValueError, match="datasets.train.prefetch_mode"):
        build_prefetcher(loader, {"prefetch_mode": "gpu"}, torch.device("cpu"))
