"""Training-time transforms on ``HxWxC`` arrays: random crops, flips, 90-degree rotations.

Randomness always comes from an explicit :class:`numpy.random.Generator` passed in. The
datasets make one per sample with :func:`sample_rng` from ``(seed, epoch, index)``, so a sample
depends only on those three numbers, never on which DataLoader worker (or how many workers)
produced it, nor on what was drawn before.
"""

from __future__ import annotations

import math
from typing import List, Literal, Sequence, Tuple

import cv2
import numpy as np

from lptn.platform.option_schema import SMALL_IMAGE_POLICIES

_UINT64 = (1 << 64) - 1


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for sample ``index`` of ``epoch`` under ``seed``.

    Built from a :class:`numpy.random.SeedSequence` of the three numbers, so nearby seeds,
    epochs and indices give statistically independent streams.
    """
    return np.random.default_rng(
        np.random.SeedSequence([int(seed) & _UINT64, int(epoch) & _UINT64, int(index) & _UINT64])
    )


def ensure_min_size(
    img: np.ndarray, size: int, policy: str = "error", name: str = ""
) -> np.ndarray:
    """Make ``img`` at least ``size`` x ``size`` according to ``policy``.

    ``error`` raises, ``pad`` reflect-pads the bottom/right edges, ``resize`` upscales
    (bicubic, aspect kept) so that the short side is ``size``. Images large enough are
    returned unchanged; two images of the same size get the same treatment, so pairs stay
    aligned.
    """
    h, w = img.shape[:2]
    if h >= size and w >= size:
        return img
    if policy == "error":
        raise ValueError(
            f"{name}: image is {h}x{w} (HxW), smaller than the crop size "
            f"gt_size={size}; use larger images, a smaller gt_size, or "
            "small_image: pad | resize"
        )
    if policy == "pad":
        pad_h, pad_w = max(0, size - h), max(0, size - w)
        pad = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (img.ndim - 2)
        # 'reflect' needs at least two pixels along an axis to mirror.
        mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > 1 else "edge"
        return np.pad(img, pad, mode=mode)
    if policy == "resize":
        scale = max(size / h, size / w)
        new_h, new_w = max(size, math.ceil(h * scale)), max(size, math.ceil(w * scale))
        out = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
        if out.ndim == 2:
            out = out[:, :, None]
        if np.issubdtype(img.dtype, np.floating):
            out = np.clip(out, 0.0, 1.0)  # bicubic overshoots
        return out
    raise ValueError(
        f"small_image: unknown policy {policy!r}; valid: {', '.join(SMALL_IMAGE_POLICIES)}"
    )


def draw_crop(h: int, w: int, size: int, rng: np.random.Generator) -> Tuple[int, int]:
    """``(top, left)`` of a uniformly random ``size`` x ``size`` window in an ``h`` x ``w``
    image (two draws from ``rng``: the row, then the column)."""
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return top, left


def draw_flips(rng: np.random.Generator) -> Tuple[bool, bool, bool]:
    """``(hflip, vflip, transpose)``, each true with p=0.5 (three draws from ``rng``)."""
    hflip, vflip, transpose = (rng.random(3) < 0.5).tolist()
    return bool(hflip), bool(vflip), bool(transpose)


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator, name: str = "") -> np.ndarray:
    """A ``size`` x ``size`` crop at a uniformly random position; error if ``img`` is smaller."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{name}: image is {h}x{w} (HxW), smaller than the crop size {size}")
    top, left = draw_crop(h, w, size, rng)
    return img[top : top + size, left : left + size, ...]


def paired_random_crop(
    img_gt: np.ndarray,
    img_lq: np.ndarray,
    size: int,
    rng: np.random.Generator,
    gt_name: str = "",
    lq_name: str = "",
) -> Tuple[np.ndarray, np.ndarray]:
    """The same random ``size`` x ``size`` window cut from two aligned images of equal size.

    Returns ``(gt_crop, lq_crop)``.
    """
    if img_gt.shape[:2] != img_lq.shape[:2]:
        raise ValueError(
            f"paired images differ in size: {gt_name} is {img_gt.shape[0]}x"
            f"{img_gt.shape[1]}, {lq_name} is {img_lq.shape[0]}x{img_lq.shape[1]}"
        )
    h, w = img_gt.shape[:2]
    if h < size or w < size:
        raise ValueError(
            f"{gt_name} / {lq_name}: images are {h}x{w} (HxW), smaller than the crop size {size}"
        )
    top, left = draw_crop(h, w, size, rng)
    window = (slice(top, top + size), slice(left, left + size))
    return img_gt[window], img_lq[window]


def augment(
    imgs: Sequence[np.ndarray], use_flip: bool, use_rot: bool, rng: np.random.Generator
) -> List[np.ndarray]:
    """Apply one random dihedral transform to every image in ``imgs`` (same op for all).

    ``use_flip``: horizontal flip with p=0.5; ``use_rot``: vertical flip with p=0.5 and a
    transpose with p=0.5, which together with the horizontal flip covers all eight
    flips/90-degree rotations. Three numbers are drawn whatever the flags, so switching an
    option does not shift the rest of the sample's random stream. Returns contiguous arrays.
    """
    hflip, vflip, transpose = draw_flips(rng)
    out = []
    for img in imgs:
        if use_flip and hflip:
            img = img[:, ::-1]
        if use_rot and vflip:
            img = img[::-1, :]
        if use_rot and transpose:
            img = img.transpose(1, 0, *range(2, img.ndim))
        out.append(np.ascontiguousarray(img))
    return out


__all__ = [
    "SMALL_IMAGE_POLICIES",
    "augment",
    "draw_crop",
    "draw_flips",
    "ensure_min_size",
    "paired_random_crop",
    "random_crop",
    "sample_rng",
]
