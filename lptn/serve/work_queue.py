"""The bounded request queue and the one model thread behind it.

Requests are *admitted* once their upload has arrived (uploads in progress are bounded
apart, by :mod:`lptn.serve.upload`, so a slow client holds no slot here): at most
``queue_size`` at once (being decoded, waiting for the model, being enhanced or encoded); one
more is refused with :class:`QueueFull`, which the web layer answers with 503 and
``Retry-After``. This bounds the decoded photos the service holds to ``queue_size``.

One thread owns the network. Request threads hand it decoded arrays through the queue's
:meth:`~EnhanceQueue.enhance_rgb`, :meth:`~EnhanceQueue.enhance_grey` and
:meth:`~EnhanceQueue.enhance_fine` (the calls of :class:`lptn.photo.PhotoEnhancer`, with the
same results, so the photo pipeline uses the queue as its enhancer) and block until their
result is ready. With ``max_batch > 1`` (accelerators), waiting RGB images of the same size and
depth are run through the network together when the batch fits the fast path's memory budget;
everything else (grey photos, images that need tiling, a lone image) runs alone through the
real :class:`~lptn.photo.PhotoEnhancer`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Tuple

import numpy as np

from lptn.photo import PhotoEnhancer
from lptn.platform.logger import get_logger
from lptn.serve.photo_adapter import BatchRunner


class QueueFull(RuntimeError):
    """The queue holds ``queue_size`` requests; ``retry_after`` is a hint in whole seconds."""

    def __init__(self, queue_size: int, retry_after: int) -> None:
        super().__init__(
            f"the server is busy: {queue_size} photos are already queued; "
            f"try again in {retry_after} s"
        )
        self.retry_after = retry_after


class QueueClosed(RuntimeError):
    """The server is shutting down."""


@dataclass(eq=False)  # identity: jobs are removed from the deque by ``is``, not by value
class _Job:
    """One image for the model thread: RGB ``enhance_rgb`` work (batchable) unless ``task``
    is given, which the model thread then runs alone."""

    img: np.ndarray
    strength: float
    task: Optional[Callable[[], np.ndarray]] = None
    future: Future[np.ndarray] = field(default_factory=Future)

    @property
    def batchable(self) -> bool:
        return self.task is None and self.img.ndim == 3

    @property
    def key(self) -> Tuple[int, int, str]:
        return self.img.shape[0], self.img.shape[1], str(self.img.dtype)


class EnhanceQueue:
    """Admission control plus the model thread; see the module docstring.

    Args:
        enhancer: the one model instance.
        queue_size: requests admitted at once (>= 1).
        max_batch: images run through the network together (1: never batch).
        batch_wait_s: how long the model thread waits for more equal-size images before it
            runs a batch that is not full (only with ``max_batch > 1``).
    """

    def __init__(
        self,
        enhancer: PhotoEnhancer,
        *,
        queue_size: int = 16,
        max_batch: int = 1,
        batch_wait_s: float = 0.01,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.enhancer = enhancer
        # Only batching needs the network itself; single images go through enhance_rgb.
        self._batches = BatchRunner(enhancer) if max_batch > 1 else None
        self.queue_size = queue_size
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self._lock = threading.Condition()
        self._admitted = 0
        self._jobs: Deque[_Job] = deque()
        self._closed = False
        # Mean seconds the model spends per image (exponential moving average), for
        # Retry-After; starts at a guess of one second.
        self._seconds_per_image = 1.0
        self.images_done = 0
        self.batches_run = 0
        self._thread = threading.Thread(target=self._run, name="lptn-model", daemon=True)
        self._thread.start()

    # -- admission -------------------------------------------------------------------------
    @property
    def length(self) -> int:
        """Requests admitted and not finished."""
        return self._admitted

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue's work at the mean model time."""
        with self._lock:
            work = self._seconds_per_image * max(1, self._admitted) / self.max_batch
        return max(1, math.ceil(work))

    def admit(self) -> _Ticket:
        """A slot for one request (use as a context manager); QueueFull when there is none."""
        with self._lock:
            if self._closed:
                raise QueueClosed("the server is shutting down")
            if self._admitted >= self.queue_size:
                full = True
            else:
                full = False
                self._admitted += 1
        if full:
            raise QueueFull(self.queue_size, self.retry_after())
        return _Ticket(self)

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    # -- the model thread ------------------------------------------------------------------
    def enhance_rgb(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """:meth:`PhotoEnhancer.enhance_rgb` on the model thread (batched with equal-size
        images when batching is on); blocks until done. Called from request threads."""
        return self._submit(_Job(img, float(strength)))

    def enhance_grey(self, img: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """:meth:`PhotoEnhancer.enhance_grey` (``HxW`` grey) on the model thread, alone."""
        value = float(strength)
        return self._submit(_Job(img, value, lambda: self.enhancer.enhance_grey(img, value)))

    def enhance_fine(self, img: np.ndarray) -> np.ndarray:
        """:meth:`PhotoEnhancer.enhance_fine` (uint16 result) on the model thread, alone."""
        return self._submit(_Job(img, 1.0, lambda: self.enhancer.enhance_fine(img)))

    def _submit(self, job: _Job) -> np.ndarray:
        with self._lock:
            if self._closed:
                raise QueueClosed("the server is shutting down")
            self._jobs.append(job)
            self._lock.notify_all()
        return job.future.result()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the model thread after the jobs already handed to it."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout)

    def _next_batch(self) -> Optional[List[_Job]]:
        with self._lock:
            while not self._jobs:
                if self._closed:
                    return None
                self._lock.wait()
            first = self._jobs.popleft()
            batch = [first]
            if self._batches is None or not first.batchable:
                return batch
            try:
                self._gather(batch, self._batches)
            except Exception:
                # The jobs taken so far are in ``batch``: they run; nothing is lost.
                get_logger().exception("model thread: batching failed; running what was taken")
            return batch

    def _gather(self, batch: List[_Job], runner: BatchRunner) -> None:
        """Move waiting jobs of the first job's size into ``batch`` (lock held), waiting up
        to ``batch_wait_s`` while other admitted requests may still bring images."""
        first = batch[0]
        deadline = time.monotonic() + self.batch_wait_s
        while True:
            for job in list(self._jobs):
                if len(batch) >= self.max_batch:
                    break
                if (
                    job.batchable
                    and job.key == first.key
                    and runner.fits(len(batch) + 1, *first.key[:2])
                ):
                    self._jobs.remove(job)
                    batch.append(job)
            left = deadline - time.monotonic()
            if len(batch) >= self.max_batch or left <= 0 or self._admitted <= len(batch):
                return
            self._lock.wait(left)

    def _run(self) -> None:
        log = get_logger()
        while True:
            try:
                batch = self._next_batch()
            except Exception as err:
                # A failure here must not leave requests waiting forever on a dead thread.
                log.exception("model thread: cannot form the next batch")
                self._fail_waiting(err)
                continue
            if batch is None:
                return
            started = time.perf_counter()
            try:
                if len(batch) == 1 or self._batches is None:
                    results = [self._run_alone(batch[0])]
                else:
                    results = self._batches([j.img for j in batch], [j.strength for j in batch])
            except Exception as err:  # every failure goes back to its own request
                if len(batch) > 1:
                    log.warning("batch of %d failed (%s); running one by one", len(batch), err)
                    self._run_singly(batch)
                else:
                    batch[0].future.set_exception(err)
                continue
            for job, out in zip(batch, results):
                job.future.set_result(out)
            self._record(len(batch), time.perf_counter() - started)

    def _run_alone(self, job: _Job) -> np.ndarray:
        if job.task is not None:
            return job.task()
        return self.enhancer.enhance_rgb(job.img, job.strength)

    def _fail_waiting(self, err: Exception) -> None:
        with self._lock:
            jobs, self._jobs = list(self._jobs), deque()
        for job in jobs:
            job.future.set_exception(err)

    def _run_singly(self, batch: List[_Job]) -> None:
        for job in batch:
            started = time.perf_counter()
            try:
                job.future.set_result(self._run_alone(job))
            except Exception as err:
                job.future.set_exception(err)
                continue
            self._record(1, time.perf_counter() - started)

    def _record(self, images: int, seconds: float) -> None:
        with self._lock:
            self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * seconds / images
            self.images_done += images
            self.batches_run += 1


class _Ticket:
    """One admitted request; leaving the ``with`` block frees its slot."""

    def __init__(self, queue: EnhanceQueue) -> None:
        self._queue: Optional[EnhanceQueue] = queue

    def __enter__(self) -> _Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._queue is not None:
            self._queue._release()
            self._queue = None
