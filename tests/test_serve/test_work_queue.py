"""The bounded queue and the model thread, in process, with the official network: admission,
batches of equal-size photos equal to one-by-one results, no batch beyond the memory budget,
errors returned to their own request."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np
import pytest
import torch

from lptn.inference.generator_weights import load_generator
from lptn.inference.settings import InferenceSettings
from lptn.photo import PhotoEnhancer, PhotoError
from lptn.platform.runtime import build_runtime
from lptn.serve.photo_adapter import BatchRunner
from lptn.serve.work_queue import EnhanceQueue, QueueFull


@pytest.fixture(scope="module", autouse=True)
def one_intra_op_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def enhancer() -> PhotoEnhancer:
    """The built-in weights (the server's default) on the CPU."""
    return PhotoEnhancer.from_weights(device="cpu")


@pytest.fixture(scope="module")
def crops(fivek_pairs) -> List[np.ndarray]:
    """Four 160x200 uint8 crops of FiveK photos."""
    return [
        np.ascontiguousarray(np.round(src[:160, :200] * 255).astype(np.uint8))
        for _, src, _ in fivek_pairs[:4]
    ]


def run_together(queue: EnhanceQueue, jobs: List[Tuple[np.ndarray, float]]) -> List[np.ndarray]:
    """Admit every job first (as requests would be), then submit them from threads at once."""
    tickets = [queue.admit() for _ in jobs]
    start = threading.Barrier(len(jobs))

    def submit(job: Tuple[np.ndarray, float]) -> np.ndarray:
        start.wait()
        return queue.enhance_rgb(*job)

    try:
        with ThreadPoolExecutor(len(jobs)) as pool:
            return list(pool.map(submit, jobs))
    finally:
        for ticket in tickets:
            ticket.release()


def test_equal_size_photos_are_batched_and_equal_one_by_one(
    enhancer: PhotoEnhancer, crops: List[np.ndarray]
) -> None:
    queue = EnhanceQueue(enhancer, queue_size=8, max_batch=4, batch_wait_s=5.0)
    try:
        strengths = [1.0, 0.5, 1.0, 0.0]
        results = run_together(queue, list(zip(crops, strengths)))
        assert queue.batches_run == 1 and queue.images_done == 4
    finally:
        queue.close()
    for img, strength, got in zip(crops, strengths, results):
        want = enhancer.enhance_rgb(img, strength)
        assert got.dtype == np.uint8 and got.shape == img.shape
        # Batched (tensor) and single (region by region) passes round the same float32 values;
        # summation order may move a value across a rounding boundary.
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    np.testing.assert_array_equal(results[3], crops[3])  # strength 0 is the input


def test_different_sizes_are_not_batched(enhancer: PhotoEnhancer, crops: List[np.ndarray]) -> None:
    queue = EnhanceQueue(enhancer, queue_size=8, max_batch=4, batch_wait_s=0.5)
    try:
        jobs = [(crops[0], 1.0), (crops[1][:120], 1.0), (crops[2], 1.0)]
        results = run_together(queue, jobs)
        assert queue.images_done == 3 and queue.batches_run >= 2
    finally:
        queue.close()
    assert [r.shape for r in results] == [j[0].shape for j in jobs]


def test_no_batch_beyond_the_memory_budget(
    official_checkpoint: Path, crops: List[np.ndarray]
) -> None:
    tight = PhotoEnhancer(
        load_generator(official_checkpoint),
        build_runtime({"device": "cpu"}),
        InferenceSettings(memory_budget_mb=1.0),
    )
    assert not BatchRunner(tight).fits(2, 160, 200)
    queue = EnhanceQueue(tight, queue_size=8, max_batch=4, batch_wait_s=0.5)
    try:
        results = run_together(queue, [(c, 1.0) for c in crops[:3]])
        assert queue.batches_run == 3
    finally:
        queue.close()
    for img, got in zip(crops, results):
        np.testing.assert_array_equal(got, tight.enhance_rgb(img, 1.0))


def test_admission_is_bounded(enhancer: PhotoEnhancer) -> None:
    queue = EnhanceQueue(enhancer, queue_size=2)
    try:
        first, second = queue.admit(), queue.admit()
        assert queue.length == 2
        with pytest.raises(QueueFull, match="busy") as err:
            queue.admit()
        assert err.value.retry_after >= 1
        first.release()
        first.release()  # a second release frees nothing more
        assert queue.length == 1
        with queue.admit():
            assert queue.length == 2
        second.release()
        assert queue.length == 0
    finally:
        queue.close()


def test_errors_go_back_to_their_request(enhancer: PhotoEnhancer, crops: List[np.ndarray]) -> None:
    queue = EnhanceQueue(enhancer, queue_size=4)
    try:
        with pytest.raises(PhotoError, match="at least 9x9 pixels"):
            queue.enhance_rgb(np.zeros((5, 40, 3), np.uint8))
        out = queue.enhance_rgb(crops[0])
    finally:
        queue.close()
    np.testing.assert_array_equal(out, enhancer.enhance_rgb(crops[0]))


def test_batches_of_16_bit_photos_blend_like_enhance_rgb(
    enhancer: PhotoEnhancer, crops: List[np.ndarray]
) -> None:
    """Partial strengths blend the 16-bit enhanced image before rounding (lptn.photo's blend)."""
    deep = [c.astype(np.uint16) * np.uint16(257) + np.uint16(77) for c in crops[:3]]
    strengths = [0.3, 1.0, 0.7]
    results = BatchRunner(enhancer)(deep, strengths)
    for img, strength, got in zip(deep, strengths, results):
        want = enhancer.enhance_rgb(img, strength)
        assert got.dtype == np.uint16
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
        assert (got != want).mean() < 0.01  # summation order only, on a few values


def test_grey_and_rgb_photos_share_the_queue(
    enhancer: PhotoEnhancer, crops: List[np.ndarray]
) -> None:
    """Grey photos (which the pipeline sends to enhance_grey) run alone, beside a batch."""
    grey = np.ascontiguousarray(crops[2][:, :, 1])
    queue = EnhanceQueue(enhancer, queue_size=8, max_batch=4, batch_wait_s=0.5)
    tickets = [queue.admit() for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            rgb = [pool.submit(queue.enhance_rgb, c, 0.5) for c in crops[:2]]
            got_grey = pool.submit(queue.enhance_grey, grey, 0.5).result()
            got_rgb = [f.result() for f in rgb]
        assert queue.images_done == 3
    finally:
        for ticket in tickets:
            ticket.release()
        queue.close()
    np.testing.assert_array_equal(got_grey, enhancer.enhance_grey(grey, 0.5))
    assert got_grey.shape == grey.shape
    for img, got in zip(crops, got_rgb):
        assert np.abs(got.astype(int) - enhancer.enhance_rgb(img, 0.5).astype(int)).max() <= 1
