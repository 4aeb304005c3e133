"""io_backend memory: every image decoded once into shared memory, equal to disk item for item,
and the same physical pages in every DataLoader worker (no per-worker copy)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lptn.data import build_dataset
from lptn.data.file_backends import MemoryBackend, make_file_backend
from lptn.data.image_io import ImageReadError, read_image


def _paired(lq: Path, gt: Path, backend: str, phase: str, **extra) -> Dataset:
    opt = {
        "type": "PairedImageDataset",
        "dataroot_lq": str(lq),
        "dataroot_gt": str(gt),
        "io_backend": {"type": backend},
        "phase": phase,
        **extra,
    }
    return build_dataset(opt, f"datasets.{phase}", seed=5)


def _assert_same_items(a: Dataset, b: Dataset, indices) -> None:
    for i in indices:
        x, y = a[i], b[i]
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert torch.equal(x[key], y[key]), (i, key)
            else:
                assert x[key] == y[key], (i, key)


@pytest.mark.parametrize("phase", ["train", "val"])
def test_memory_equals_disk_item_for_item(make_pair_dirs, phase: str) -> None:
    lq, gt, arrays = make_pair_dirs(names=("a", "b", "c"), size=(30, 41))
    extra = {"gt_size": 16, "use_flip": True, "use_rot": True} if phase == "train" else {}
    disk = _paired(lq, gt, "disk", phase, **extra)
    memory = _paired(lq, gt, "memory", phase, **extra)
    for epoch in (0, 3):
        disk.set_epoch(epoch)
        memory.set_epoch(epoch)
        _assert_same_items(disk, memory, range(6))  # enlarged indices too
    backend = memory.lq_backend
    assert isinstance(backend, MemoryBackend)
    assert backend.nbytes == sum(a.nbytes for a in arrays.values())
    np.testing.assert_array_equal(backend.read_image("b.png"), arrays["b"])
    assert not backend.read_image("b.png").flags.writeable  # shared by all workers


def test_memory_from_lmdb_and_16_bit(
    tmp_path: Path, make_pair_dirs, noise_image, save_rgb, create_lmdb_script
) -> None:
    lq, gt, _ = make_pair_dirs(names=("a", "b"), size=(20, 24))
    lq_db = create_lmdb_script.make_lmdb_from_folder(lq, tmp_path / "lq.lmdb", progress=False)
    gt_db = create_lmdb_script.make_lmdb_from_folder(gt, tmp_path / "gt.lmdb", progress=False)
    lmdb_set = _paired(lq_db, gt_db, "lmdb", "val")
    memory_set = _paired(lq_db, gt_db, "memory", "val")  # source: auto finds the LMDB
    assert memory_set.lq_backend.source.__class__.__name__ == "LmdbBackend"
    _assert_same_items(lmdb_set, memory_set, range(2))

    rng = np.random.default_rng(1)
    folder = tmp_path / "deep"
    img16 = noise_image(rng, 7, 9, np.uint16)
    save_rgb(folder / "x.png", img16)
    backend = make_file_backend({"type": "memory", "source": "disk"}, folder, "datasets.x")
    out = backend.read_image("x.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, read_image(folder / "x.png"))
    with pytest.raises(ValueError, match="datasets.io_backend.source"):
        make_file_backend({"type": "memory", "source": "s3"}, folder, "datasets.dataroot_lq")


class _FirstPixel(Dataset):
    """Reads the first pixel of the first image through the backend, in whichever process."""

    def __init__(self, backend: MemoryBackend, length: int) -> None:
        self.backend = backend
        self.key = backend.keys()[0]
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.backend.read_image(self.key)[0, 0].copy())


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_workers_read_the_same_shared_pages(make_pair_dirs, start_method: str) -> None:
    """A write made by the parent *after* the worker started is visible to the worker: the
    worker maps the parent's buffer (a copy, or copy-on-write memory, would not see it)."""
    lq, _, arrays = make_pair_dirs(names=("a", "b"), size=(8, 8))
    backend = make_file_backend({"type": "memory"}, lq, "datasets.train.dataroot_lq")
    assert backend.buffer.is_shared()
    original = torch.from_numpy(arrays["a"][0, 0].copy())
    loader = DataLoader(
        _FirstPixel(backend, 6),
        batch_size=None,
        num_workers=1,
        persistent_workers=True,
        prefetch_factor=1,
        multiprocessing_context=start_method,
    )
    batches = iter(loader)
    assert torch.equal(next(batches), original)  # the worker is running
    backend.buffer[:3] = 255 - backend.buffer[:3]  # the first pixel of 'a.png', in the parent
    later = list(batches)
    assert torch.equal(later[-1], 255 - original)


def test_every_file_that_cannot_be_decoded_is_named_at_once(
    tmp_path: Path, fivek_sample_dir: Path
) -> None:
    for name in ("a0212", "a0481", "a0535"):
        shutil.copy(fivek_sample_dir / "source" / f"{name}.png", tmp_path / f"{name}.png")
    for name in ("a0212", "a0535"):
        data = (tmp_path / f"{name}.png").read_bytes()
        (tmp_path / f"{name}.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info:
        MemoryBackend(tmp_path, "datasets.train.dataroot_lq")
    message = str(info.value)
    assert "cannot decode 2 of 3 images" in message and "datasets.train.dataroot_lq" in message
    assert "a0212.png" in message and "a0535.png" in message and "a0481" not in message
