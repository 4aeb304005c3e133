"""Temporal smoothing of the trans_low InstanceNorm statistics (official checkpoint, real
photo content): same output as the fast path without smoothing when the statistics do not
move, less colour pumping in a static background when an object moves, reset at scene cuts."""

from __future__ import annotations

from typing import List

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from lptn.inference.fast_lptn import FastLPTN
from lptn.metrics.temporal_flicker import flicker_ratio, mean_frame_change
from lptn.video.frame_batch import FrameBatchSink, FrameBatchSource
from lptn.video.temporal_smoothing import SmoothedFastLPTN, StatisticsSmoother

H, W = 224, 256


def _moving_object_clip(photo: np.ndarray, count: int) -> List[np.ndarray]:
    """A still photo with a bright square crossing its top edge, 8 px per frame."""
    bg = np.round(cv2.resize(photo, (W, H)) * 255).astype(np.uint8)
    frames = []
    for t in range(count):
        f = bg.copy()
        x = 60 + 8 * t
        f[0:40, x : x + 40] = (250, 250, 245)
        frames.append(f)
    return frames


def _run(path: FastLPTN, frames: List[np.ndarray], fps: float = 24.0) -> List[np.ndarray]:
    outs = []
    for i, f in enumerate(frames):
        if isinstance(path, SmoothedFastLPTN):
            path.set_frame_times([i / fps])
        outs.append(path.enhance_array(f))
    return outs


def test_without_motion_of_the_statistics_it_is_the_fast_path(
    photo: np.ndarray, generator: nn.Module
) -> None:
    frames = _moving_object_clip(photo, 3)
    plain = FastLPTN(generator)
    smoothed = SmoothedFastLPTN(generator, tau=1e-6)  # follows each frame at once
    for a, b in zip(_run(plain, frames), _run(smoothed, frames)):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_batches_give_the_frame_by_frame_result(photo: np.ndarray, generator: nn.Module) -> None:
    frames = _moving_object_clip(photo, 4)
    one = _run(SmoothedFastLPTN(generator, tau=0.5), frames)
    batched = SmoothedFastLPTN(generator, tau=0.5)
    batched.set_frame_times([i / 24 for i in range(4)])
    sink = FrameBatchSink(4, H, W, np.uint8)
    batched.run(FrameBatchSource(frames), sink)
    for a, b in zip(one, sink.outs):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_smoothing_reduces_pumping_of_the_static_background(
    photo: np.ndarray, generator: nn.Module
) -> None:
    frames = _moving_object_clip(photo, 10)
    # rows far beyond the receptive field of the square: they change only through the
    # image-wide InstanceNorm statistics
    background = np.zeros((H, W), bool)
    background[184:] = True
    assert mean_frame_change(frames, mask=background) == 0
    plain = mean_frame_change(_run(FastLPTN(generator), frames), mask=background)
    smooth = mean_frame_change(_run(SmoothedFastLPTN(generator, tau=1.0), frames), mask=background)
    assert plain > 0  # the pumping exists without smoothing
    assert smooth < 0.5 * plain


def test_scene_cut_resets_the_statistics(
    photo: np.ndarray, other_photo: np.ndarray, generator: nn.Module
) -> None:
    a = _moving_object_clip(photo, 1)[0]
    b = np.round(cv2.resize(other_photo, (W, H)) * 255).astype(np.uint8)
    smoothed = SmoothedFastLPTN(generator, tau=5.0)
    outs = _run(smoothed, [a, a, b, b])
    assert smoothed.smoother.cuts == 1
    expected_b = FastLPTN(generator).enhance_array(b)
    assert np.abs(outs[3].astype(int) - expected_b.astype(int)).max() <= 1


def test_variable_frame_intervals_weigh_the_average() -> None:
    feat0 = torch.zeros(1, 2, 4, 4)
    feat0[:, :, :2] = 1.0  # mean 0.5, variance 0.25
    feat1 = feat0 + 0.1  # a small shift: not a cut
    quick, slow = StatisticsSmoother(tau=1.0), StatisticsSmoother(tau=1.0)
    quick.normalise(feat0, [0.0])
    slow.normalise(feat0, [0.0])
    quick.normalise(feat1, [0.1])
    slow.normalise(feat1, [2.0])  # a long gap: the new statistics weigh more
    assert quick.mean is not None and slow.mean is not None
    assert float(quick.mean[0]) == pytest.approx(0.5 + 0.1 * (1 - np.exp(-0.1)), abs=1e-6)
    assert float(slow.mean[0]) == pytest.approx(0.5 + 0.1 * (1 - np.exp(-2.0)), abs=1e-6)


def test_flicker_ratio_aligns_a_pan() -> None:
    rng = np.random.default_rng(0)
    wide = rng.random((20, 60, 3))
    pan = [wide[:, 2 * t : 2 * t + 40] for t in range(5)]  # content moves left 2 px a frame
    assert mean_frame_change(pan, shift=(0, -2)) == 0
    assert mean_frame_change(pan) > 0.1
    noisy_in = [p + 0.01 * (t % 2) for t, p in enumerate(pan)]  # changes by 0.01 a frame
    pumping_out = [p + 0.03 * (t % 2) for t, p in enumerate(pan)]  # by 0.03 a frame
    assert flicker_ratio(noisy_in, pumping_out, (0, -2)) == pytest.approx(3.0)
