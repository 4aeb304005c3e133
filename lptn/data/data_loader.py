"""DataLoaders from a dataset's option block, the enlarged/sharded sampler, and a prefetcher.

Repeatability: the sampler's order comes from ``seed + epoch``; each sample's random crops come
from ``(seed, epoch, index)`` inside the dataset (see ``lptn.data.dataset_base``); worker
processes additionally seed ``random``/``numpy``/``torch`` with
``seed + rank * num_workers + worker_id`` for any code that uses the global generators. Workers
are not persistent, so the epoch set on the dataset reaches them each epoch.
"""

from __future__ import annotations

import functools
import math
import random
from typing import Any, Dict, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lptn.data.device_augment import apply_on_device, is_deferred
from lptn.platform import device_backend
from lptn.platform.option_schema import DATASET, PREFETCH_MODES, fill_defaults, whole_number

LOADER_PHASES = ("train", "val", "test")


class EnlargedSampler(Sampler):
    """Samples ``ratio`` passes over the dataset per epoch, split into ``num_replicas`` shards.

    Each epoch the indices ``0 .. ratio*len(dataset)-1`` are shuffled with ``seed + epoch``
    (or kept in order), padded by wrapping to a multiple of ``num_replicas``, and rank ``r``
    takes every ``num_replicas``-th one starting at ``r``: the shards are disjoint and together
    hold every sample once (plus at most ``num_replicas - 1`` repeats of padding).

    Datasets with ``accepts_enlarged_index = True`` receive the enlarged index itself (so
    repeats of an image get different random crops); others get ``index % len(dataset)``.
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        ratio: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"EnlargedSampler: rank {rank} is not in 0..{num_replicas - 1}")
        ratio = whole_number(ratio, "dataset_enlarge_ratio", 1)
        self.dataset = dataset
        self.dataset_size = len(dataset)  # type: ignore[arg-type]
        if self.dataset_size == 0:
            raise ValueError("EnlargedSampler: the dataset is empty")
        self.num_replicas = num_replicas
        self.rank = rank
        self.ratio = ratio
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.total = self.dataset_size * ratio
        self.num_samples = math.ceil(self.total / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.wrap = not getattr(dataset, "accepts_enlarged_index", False)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order; also forwarded to ``dataset.set_epoch`` when it has one."""
        self.epoch = int(epoch)
        set_dataset_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_dataset_epoch):
            set_dataset_epoch(self.epoch)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.total, generator=gen).tolist()
        else:
            indices = list(range(self.total))
        # Wrap-around padding keeps every shard the same length, as DDP needs.
        indices += indices[: self.total_size - len(indices)]
        shard = indices[self.rank : self.total_size : self.num_replicas]
        if self.wrap:
            shard = [i % self.dataset_size for i in shard]
        return iter(shard)

    def __len__(self) -> int:
        return self.num_samples


class ShardSampler(Sampler):
    """Evaluation order split between processes: rank ``r`` of ``n`` takes the dataset indices
    ``r, r + n, r + 2n, ...`` in order. No padding: every image is seen exactly once in all,
    and the shards differ in length by one at most."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"ShardSampler: rank {rank} is not in 0..{num_replicas - 1}")
        self.size = len(dataset)  # type: ignore[arg-type]
        self.num_replicas = num_replicas
        self.rank = rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))


def seed_worker(worker_id: int, base_seed: int) -> None:
    """``worker_init_fn``: seed python, numpy and torch with ``base_seed + worker_id``."""
    seed = base_seed + worker_id
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def build_dataloader(
    dataset: Dataset,
    opt: Dict[str, Any],
    *,
    seed: int,
    num_replicas: int = 1,
    rank: int = 0,
    phase: str,
    key_path: Optional[str] = None,
) -> DataLoader:
    """A DataLoader for ``dataset`` configured by its option block ``opt``.

    ``train``: ``batch_size_per_gpu`` (required), ``num_worker_per_gpu`` (default 0),
    ``use_shuffle`` (default true), ``dataset_enlarge_ratio`` (default 1), ``pin_memory``
    (default false); :class:`EnlargedSampler` for shard ``rank`` of ``num_replicas``; last
    partial batch dropped. Call ``loader.sampler.set_epoch(epoch)`` before each epoch.
    ``val`` / ``test``: batch 1, in order, ``num_worker_per_gpu`` workers (default 0); with
    several processes each takes its :class:`ShardSampler` share. A dataset with a
    ``collate_fn`` attribute (device augmentation) batches with it.
    """
    if phase not in LOADER_PHASES:
        raise ValueError(
            f"build_dataloader: phase must be one of {', '.join(LOADER_PHASES)}, got {phase!r}"
        )
    key_path = key_path or f"datasets.{phase}"
    # The loader's keys of a dataset block, checked and defaulted by the schema.
    opt = fill_defaults(DATASET, opt, key_path, required=False)
    seed = int(seed)
    num_workers: int = opt["num_worker_per_gpu"]
    pin_memory: bool = opt["pin_memory"]
    worker_init = (
        functools.partial(seed_worker, base_seed=seed + rank * num_workers)
        if num_workers > 0
        else None
    )
    generator = torch.Generator()
    generator.manual_seed(seed + rank)
    if phase != "train":
        shard = ShardSampler(dataset, num_replicas, rank) if num_replicas > 1 else None
        return DataLoader(
            dataset,
            batch_size=1,
            shuffle=False,
            sampler=shard,
            num_workers=num_workers,
            pin_memory=pin_memory,
            worker_init_fn=worker_init,
            generator=generator,
        )

    batch_size = opt.get("batch_size_per_gpu")
    if batch_size is None:
        # Required for training only, so the schema leaves it to this check.
        raise ValueError(f"{key_path}.batch_size_per_gpu: required for the {key_path} loader")
    sampler = EnlargedSampler(
        dataset,
        num_replicas=num_replicas,
        rank=rank,
        ratio=opt["dataset_enlarge_ratio"],
        shuffle=opt["use_shuffle"],
        seed=seed,
    )
    if len(sampler) < batch_size:
        raise ValueError(
            f"{key_path}.batch_size_per_gpu: {batch_size} is more than the "
            f"{len(sampler)} samples per epoch on this process "
            f"({sampler.dataset_size} images x dataset_enlarge_ratio "
            f"{sampler.ratio} / {num_replicas} processes); no full batch could "
            "be formed"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=getattr(dataset, "collate_fn", None),
        pin_memory=pin_memory,
        drop_last=True,
        worker_init_fn=worker_init,
        generator=generator,
        persistent_workers=False,
    )


def move_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Copy every tensor in a (nested dict/list/tuple) batch to ``device``; other values as-is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device, non_blocking) for v in batch)
    return batch


def _tensors(batch: Any) -> Iterator[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, dict):
        for value in batch.values():
            yield from _tensors(value)
    elif isinstance(batch, (list, tuple)):
        for value in batch:
            yield from _tensors(value)


class Prefetcher:
    """Iterates a DataLoader and hands out batches already on ``device``.

    ``next()`` returns the next batch (tensors moved to ``device``) or ``None`` at the end of
    the epoch; ``reset()`` starts a new pass. With ``side_stream=True`` and an accelerator that
    has streams (CUDA, Ascend NPU) the copy of batch ``k+1`` runs on a separate stream while
    batch ``k`` is in use. Batches of a dataset that augments on the device
    (:mod:`lptn.data.device_augment`) are cropped, flipped and converted there, on that
    stream too. The device is the caller's decision; this class only follows it.
    """

    def __init__(
        self,
        loader: Any,
        device: torch.device,
        non_blocking: bool = False,
        side_stream: bool = False,
    ) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self.non_blocking = non_blocking
        self._stream = (
            device_backend.new_stream(self.device)
            if side_stream and device_backend.supports_streams(self.device)
            else None
        )
        # The first pass starts on the first next(), so that building a prefetcher and then
        # calling sampler.set_epoch() + reset() does not start worker processes twice.
        self._iter: Optional[Iterator[Any]] = None
        self._ready: Any = None

    def reset(self) -> None:
        """Start a new pass over the loader (call after ``sampler.set_epoch``)."""
        self._iter = iter(self.loader)
        if self._stream is not None:
            self._preload()

    def _to_device(self, batch: Any, non_blocking: bool) -> Any:
        if is_deferred(batch):
            return apply_on_device(batch, self.device, non_blocking)
        return move_to_device(batch, self.device, non_blocking)

    def _preload(self) -> None:
        try:
            batch = next(self._iter)  # type: ignore[arg-type]
        except StopIteration:
            self._ready = None
            return
        with device_backend.stream_context(self._stream, self.device):
            self._ready = self._to_device(batch, non_blocking=True)

    def next(self) -> Any:
        """The next batch on ``device``, or ``None`` when the pass is over."""
        if self._iter is None:
            self.reset()
        if self._stream is None:
            try:
                batch = next(self._iter)  # type: ignore[arg-type]
            except StopIteration:
                return None
            return self._to_device(batch, self.non_blocking)
        current = device_backend.current_stream(self.device)
        current.wait_stream(self._stream)
        batch = self._ready
        if batch is None:
            return None
        # The tensors were allocated on the side stream but are used on the current one.
        for tensor in _tensors(batch):
            tensor.record_stream(current)
        self._preload()
        return batch

    def __iter__(self) -> Iterator[Any]:
        while True:
            batch = self.next()
            if batch is None:
                return
            yield batch


def build_prefetcher(
    loader: Any, opt: Dict[str, Any], device: torch.device, key_path: str = "datasets.train"
) -> Prefetcher:
    """The :class:`Prefetcher` that ``opt['prefetch_mode']`` (``~``, ``cpu``, ``cuda`` or
    ``npu``) asks for.

    ``cuda`` / ``npu`` use a side stream when ``device`` has streams and plain copies
    otherwise (the CPU), so an option file written for a GPU still runs anywhere.
    """
    opt = fill_defaults(DATASET, opt, key_path, required=False)
    mode = opt["prefetch_mode"]
    pinned: bool = opt["pin_memory"]
    side_stream = mode in ("cuda", "npu")
    return Prefetcher(loader, device, non_blocking=pinned or side_stream, side_stream=side_stream)


__all__ = [
    "EnlargedSampler",
    "PREFETCH_MODES",
    "Prefetcher",
    "ShardSampler",
    "build_dataloader",
    "build_prefetcher",
    "move_to_device",
    "seed_worker",
]
