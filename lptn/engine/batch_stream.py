"""Endless training batches that know their epoch and position, so a run resumes mid-epoch.

The data order is a function of ``(seed, epoch)``; a resumed epoch starts at its next batch
through a sampler that skips the used indices, so skipped samples are never loaded.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

from torch.utils.data import DataLoader, Sampler


class _OffsetSampler(Sampler):
    """The sampler's current order without its first ``offset`` indices."""

    def __init__(self, base: Iterable[int], offset: int) -> None:
        self.base = base
        self.offset = offset

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.offset, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.offset)  # type: ignore[arg-type]


def loader_skipping_batches(loader: DataLoader, skip_batches: int) -> DataLoader:
    """A loader like ``loader`` whose pass starts at batch ``skip_batches`` of the sampler's
    current epoch; the skipped samples are never loaded. Needs a ``drop_last`` batch loader
    built with ``sampler=`` (the training loader)."""
    if skip_batches == 0:
        return loader
    if loader.batch_size is None:
        raise ValueError("cannot resume inside an epoch: the training loader has no batch_size")
    sampler = _OffsetSampler(loader.sampler, skip_batches * loader.batch_size)
    workers = loader.num_workers
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor if workers > 0 else None,
        persistent_workers=False,
    )


class BatchStream:
    """Endless training batches; owns its position: the epoch and how many batches of it were
    used.

    Args:
        loader: the training DataLoader (an ``EnlargedSampler`` with ``set_epoch``).
        make_prefetcher: wraps a loader into an object whose ``next()`` returns a batch on the
            device or None at the end of the pass.
        epoch, consumed: where to start (a resumed run starts inside its epoch).
    """

    def __init__(
        self, loader: DataLoader, make_prefetcher: Any, epoch: int = 0, consumed: int = 0
    ) -> None:
        self.loader = loader
        self.make_prefetcher = make_prefetcher
        self._epoch = epoch
        self._consumed = consumed
        self._prefetcher: Any = None
        self._before = (epoch, consumed)

    @property
    def epoch(self) -> int:
        """The epoch of the last batch taken (of the next one before any was taken)."""
        return self._epoch

    @property
    def consumed(self) -> int:
        """Batches of :attr:`epoch` taken so far (the position a checkpoint saves)."""
        return self._consumed

    def seek(self, epoch: int, consumed: int) -> None:
        """Start the next pass at batch ``consumed`` of ``epoch`` (a resumed run); before the
        first :meth:`next` only."""
        if self._prefetcher is not None:
            raise RuntimeError("BatchStream.seek: the stream has started already")
        self._epoch, self._consumed = int(epoch), int(consumed)
        self._before = (self._epoch, self._consumed)

    def unread(self) -> None:
        """Put the last batch back: the position goes to where it was before that
        :meth:`next`, and the next call starts a pass there (the batch is loaded again).
        For a batch that was taken but not used (another process could not load its own)."""
        self._epoch, self._consumed = self._before
        self._prefetcher = None

    def _start_epoch(self) -> None:
        self.loader.sampler.set_epoch(self._epoch)  # type: ignore[attr-defined]  # EnlargedSampler
        self._prefetcher = self.make_prefetcher(
            loader_skipping_batches(self.loader, self._consumed)
        )

    def next(self) -> Any:
        """The next batch. When it cannot be loaded the error propagates and the position is
        where it was: the batch was not used, so a state saved now (or a later call) loads it
        again."""
        position = self._before = (self._epoch, self._consumed)
        try:
            if self._prefetcher is None:
                self._start_epoch()
            batch = self._prefetcher.next()
            if batch is None:
                self._epoch += 1
                self._consumed = 0
                self._start_epoch()
                batch = self._prefetcher.next()
                if batch is None:
                    raise RuntimeError("the training loader yields no batch in a whole epoch")
        except BaseException:
            # A later call starts a fresh pass here instead of reading a broken one on.
            self._epoch, self._consumed = position
            self._prefetcher = None
            raise
        self._consumed += 1
        return batch
