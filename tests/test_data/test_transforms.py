"""Crops, flips and rotations on arrays, driven by explicit generators."""

from __future__ import annotations

import numpy as np
import pytest

from lptn.data.transforms import (
    augment,
    ensure_min_size,
    paired_random_crop,
    random_crop,
    sample_rng,
)


def _coordinate_image(h: int, w: int) -> np.ndarray:
    """Pixel (y, x) holds (y, x, y*w + x): a crop reveals exactly where it came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy, xx, yy * w + xx], axis=2).astype(np.int64)


def test_random_crop_is_a_contiguous_window() -> None:
    img = _coordinate_image(30, 41)
    rng = np.random.default_rng(0)
    corners = set()
    for _ in range(50):
        crop = random_crop(img, 8, rng)
        top, left = int(crop[0, 0, 0]), int(crop[0, 0, 1])
        np.testing.assert_array_equal(crop, img[top : top + 8, left : left + 8])
        corners.add((top, left))
    assert len(corners) > 30
    with pytest.raises(ValueError, match="img.png.*30x41.*64"):
        random_crop(img, 64, rng, "img.png")


def test_paired_random_crop_uses_one_window_for_both() -> None:
    gt = _coordinate_image(20, 25)
    lq = gt * 3 + 1
    gt_c, lq_c = paired_random_crop(gt, lq, 7, np.random.default_rng(1))
    np.testing.assert_array_equal(lq_c, gt_c * 3 + 1)
    with pytest.raises(ValueError, match="gt.png is 20x25, lq.png is 20x24"):
        paired_random_crop(gt, lq[:, :24], 7, np.random.default_rng(1), "gt.png", "lq.png")


def _dihedral(img: np.ndarray):
    out = []
    for k in range(4):
        rot = np.rot90(img, k)
        out += [rot, rot[:, ::-1]]
    return out


def test_augment_covers_the_eight_symmetries_and_applies_one_to_all() -> None:
    img = _coordinate_image(5, 5)
    variants = [v.tobytes() for v in _dihedral(img)]
    assert len(set(variants)) == 8
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(200):
        a, b = augment([img, img + 100], use_flip=True, use_rot=True, rng=rng)
        assert a.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(b, a + 100)  # same op on both
        seen.add(variants.index(a.tobytes()))
    assert seen == set(range(8))


def test_augment_flags() -> None:
    img = _coordinate_image(4, 6)
    rng = np.random.default_rng(3)
    outs = {augment([img], use_flip=False, use_rot=False, rng=rng)[0].tobytes() for _ in range(20)}
    assert outs == {img.tobytes()}
    outs = {augment([img], use_flip=True, use_rot=False, rng=rng)[0].tobytes() for _ in range(50)}
    assert outs == {img.tobytes(), img[:, ::-1].tobytes()}


def test_sample_rng_depends_only_on_seed_epoch_index() -> None:
    draw = lambda *key: sample_rng(*key).integers(0, 1 << 30, size=4).tolist()  # noqa: E731
    assert draw(1, 2, 3) == draw(1, 2, 3)
    assert len({tuple(draw(*k)) for k in [(1, 2, 3), (1, 2, 4), (1, 3, 3), (2, 2, 3)]}) == 4


def test_ensure_min_size_policies() -> None:
    img = np.random.default_rng(4).random((6, 20, 3)).astype(np.float32)
    assert ensure_min_size(img, 6) is img
    with pytest.raises(ValueError, match="small.png.*6x20.*gt_size=8"):
        ensure_min_size(img, 8, "error", "small.png")
    padded = ensure_min_size(img, 8, "pad")
    assert padded.shape == (8, 20, 3)
    np.testing.assert_array_equal(padded[:6], img)
    np.testing.assert_array_equal(padded[6:], img[4:2:-1])  # mirrored about the last row
    resized = ensure_min_size(img, 9, "resize")
    assert resized.shape == (9, 30, 3)
    assert 0.0 <= resized.min() and resized.max() <= 1.0
    with pytest.raises(ValueError, match="unknown policy"):
        ensure_min_size(img, 9, "stretch")
