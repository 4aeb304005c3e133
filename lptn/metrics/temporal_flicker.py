"""Flicker of a video: how much consecutive frames change, compared between input and output.

``mean_frame_change`` is the mean absolute difference between consecutive frames, in [0, 1]
units, after aligning them by a known per-frame content motion (a pan): on a still or panning
clip, what is left is temporal instability. ``flicker_ratio`` divides the output's change by the
input's: 1 means the enhancement adds no flicker of its own.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np


def _aligned(
    prev: np.ndarray, cur: np.ndarray, shift: Tuple[int, int]
) -> Tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of ``prev`` and ``cur`` when content moves by ``shift`` = (dy, dx)
    pixels per frame (content at (y, x) in ``prev`` is at (y + dy, x + dx) in ``cur``)."""
    dy, dx = shift
    h, w = prev.shape[:2]
    p = prev[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    c = cur[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
    return p, c


def mean_frame_change(
    frames: Sequence[np.ndarray],
    shift: Tuple[int, int] = (0, 0),
    mask: Optional[np.ndarray] = None,
) -> float:
    """Mean |frame_t - frame_{t-1}| over t, pixels and channels, in [0, 1] units.

    Args:
        frames: ``H x W x C`` arrays (uint8, uint16 or float in [0, 1]), at least two.
        shift: content motion per frame (dy, dx) in pixels; frames are aligned by it.
        mask: ``H x W`` bool, pixels to count (only with ``shift`` (0, 0)), e.g. a static
            background.
    """
    if len(frames) < 2:
        raise ValueError("mean_frame_change needs at least two frames")
    if mask is not None and shift != (0, 0):
        raise ValueError("mask applies to still clips only (shift (0, 0))")
    peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(frames[0].dtype, 1.0)
    total = 0.0
    for prev, cur in zip(frames[:-1], frames[1:]):
        p, c = _aligned(prev.astype(np.float64), cur.astype(np.float64), shift)
        diff = np.abs(c - p)
        total += float(diff[mask].mean() if mask is not None else diff.mean())
    return total / (len(frames) - 1) / peak


def flicker_ratio(
    inputs: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    shift: Tuple[int, int] = (0, 0),
    mask: Optional[np.ndarray] = None,
) -> float:
    """``mean_frame_change(outputs) / mean_frame_change(inputs)`` (same alignment and mask)."""
    change_in = mean_frame_change(inputs, shift, mask)
    if change_in == 0:
        raise ValueError("the input does not change between frames; flicker ratio undefined")
    return mean_frame_change(outputs, shift, mask) / change_in
