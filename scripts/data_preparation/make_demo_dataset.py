"""Build the demo dataset from scikit-image's bundled colour photos: no download, a few seconds.

Source domain: five natural colour photos shipped inside scikit-image (``skimage.data``:
astronaut, chelsea, coffee, rocket, and the left view of stereo_motorcycle), all readable
offline. Target domain: the same content after the fixed retouch below.

The retouch (:func:`retouch`), on float RGB in [0, 1], applied in this order:

1. White balance (warmer): ``x1_c = clip(x_c * g_c, 0, 1)`` with ``g = (1.06, 1.00, 0.88)``
   for (R, G, B).
2. Tone curve, a gamma lift then an S-curve:
   ``y = x1 ** (1 / 1.25)``; ``x2 = y + 0.5 * y * (1 - y) * (2 * y - 1)``
   (monotonic, fixes 0, 0.5 and 1, darkens below 0.5 and brightens above).
3. Saturation: with the BT.601 luma ``L = 0.299 R + 0.587 G + 0.114 B`` of ``x2``,
   ``out = clip(L + 1.25 * (x2 - L), 0, 1)``.

Every target image is ``round(255 * retouch(s / 255)) / 255`` of an 8-bit source image ``s``
(the quantised source, so re-applying the retouch to the stored source reproduces the target
to within 1/255).

Splits. Each photo is cut at 40% of its width: the right 60% feeds training only, the left
40% is held out and cut into a top half (val) and a bottom half (test), each trimmed to a
multiple of 8 pixels. So no val/test pixel is ever seen in training. (Format 2 held out the
right 40% instead; that put the astronaut's black helmet in the test set, 57% of that test
image near black (all channels < 8) against 4% of the training part, so every trained model
was scored on content it never saw, where SSIM is dominated by one-level offsets.)

- ``train/source``: 12 crops per photo (``src_{photo}_{k}.png``, 60 images) and
  ``train/target``: 12 *other* crops per photo, retouched (``ref_{photo}_{k}.png``, 60 images).
  This is the unpaired setting: the two folders hold different crops, and names do NOT pair
  them. A crop is a window of random size and position in the training part, resized by a
  random factor in [lower bound, 1] (never upscaled) to between 256 and 384 pixels per side
  (less where the training part is smaller; at least 256), drawn from ``--seed``.
- ``train_paired/source`` and ``train_paired/target``: 12 more crops per photo and their
  retouches, aligned by file name (``{photo}_{k}.png``, 60 pairs), for paired training. Drawn
  the same way from the training part only, from a random stream of their own, so they never
  change the unpaired crops of a seed.
- ``val/{source,target}`` and ``test/{source,target}``: one image per photo, paired and
  aligned by file name (``{photo}.png``); identical for every seed.

All images are 8-bit RGB PNG. A ``manifest.json`` written last lists the files; a complete
dataset is left alone unless ``--overwrite`` is given. The dataset is built in a temporary
folder beside the output and moved into place, so an interrupted run never leaves half a
dataset at ``--output``.

Usage: ``python scripts/data_preparation/make_demo_dataset.py [--output datasets/demo]
[--seed 0] [--overwrite]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

DEFAULT_OUTPUT = Path("datasets/demo")
MANIFEST = "manifest.json"
FORMAT_VERSION = 3  # 2: train_paired/ added; 3: held-out strip on the left

WB_GAINS = np.array([1.06, 1.00, 0.88])
GAMMA = 1.25
S_CURVE_STRENGTH = 0.5
SATURATION = 1.25
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

HELD_OUT_FRACTION = 0.4  # of each photo's width, from the left; the rest trains
CROPS_PER_PHOTO = 12  # per domain, and again for the aligned pairs
CROP_SIDE_RANGE = (256, 384)
HELD_OUT_MULTIPLE = 8
FOLDERS = (
    "train/source",
    "train/target",
    "train_paired/source",
    "train_paired/target",
    "val/source",
    "val/target",
    "test/source",
    "test/target",
)


def retouch(img: np.ndarray) -> np.ndarray:
    """The fixed target-domain edit (formulas in the module docstring).

    Args:
        img: float RGB array (H, W, 3) with values in [0, 1].

    Returns:
        float64 RGB array (H, W, 3) in [0, 1].
    """
    if img.ndim != 3 or img.shape[-1] != 3 or not np.issubdtype(img.dtype, np.floating):
        raise ValueError(
            f"retouch: expected a float (H, W, 3) RGB array, got {img.dtype} of shape {img.shape}"
        )
    x = np.clip(img.astype(np.float64) * WB_GAINS, 0.0, 1.0)
    y = x ** (1.0 / GAMMA)
    x = y + S_CURVE_STRENGTH * y * (1.0 - y) * (2.0 * y - 1.0)
    luma = (x @ LUMA_WEIGHTS)[..., None]
    return np.clip(luma + SATURATION * (x - luma), 0.0, 1.0)


def _motorcycle_left() -> np.ndarray:
    import skimage.data

    return skimage.data.stereo_motorcycle()[0]


def _skimage_photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


PHOTOS: Dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage_photo("astronaut"),
    "chelsea": _skimage_photo("chelsea"),
    "coffee": _skimage_photo("coffee"),
    "rocket": _skimage_photo("rocket"),
    "motorcycle": _motorcycle_left,
}


def load_photo(name: str) -> np.ndarray:
    """One bundled photo as uint8 RGB (H, W, 3)."""
    try:
        img = PHOTOS[name]()
    except Exception as err:  # a broken or partial scikit-image install
        raise RuntimeError(
            f"could not load the bundled scikit-image photo {name!r}: {err}. "
            "The demo needs scikit-image's own data files (no download)."
        ) from err
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise RuntimeError(
            f"bundled photo {name!r}: expected uint8 RGB, got {img.dtype} {img.shape}"
        )
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 with rounding, as the metrics do."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def retouch_uint8(img: np.ndarray) -> np.ndarray:
    """:func:`retouch` on an 8-bit RGB image, returned as 8-bit RGB."""
    return to_uint8(retouch(img.astype(np.float64) / 255.0))


def held_out_pieces(img: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(val, test) pieces: top and bottom halves of the left 40%, sides multiples of 8."""
    height, width = img.shape[:2]
    strip = img[:, : int(width * HELD_OUT_FRACTION)]
    half = height // 2
    pieces = []
    for piece in (strip[:half], strip[half:]):
        h = piece.shape[0] // HELD_OUT_MULTIPLE * HELD_OUT_MULTIPLE
        w = piece.shape[1] // HELD_OUT_MULTIPLE * HELD_OUT_MULTIPLE
        pieces.append(piece[:h, :w])
    return pieces[0], pieces[1]


def random_crop(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A window of ``region`` (uint8 RGB) resized down to 256-384 px per side (uint8 RGB)."""
    region_h, region_w = region.shape[:2]
    low, high = CROP_SIDE_RANGE
    out_h = int(rng.integers(low, min(high, region_h) + 1))
    out_w = int(rng.integers(low, min(high, region_w) + 1))
    # The window (out / scale) must fit in the region, and scale <= 1 avoids upscaling.
    min_scale = max(out_h / region_h, out_w / region_w)
    scale = float(rng.uniform(min_scale, 1.0))
    win_h = min(region_h, int(round(out_h / scale)))
    win_w = min(region_w, int(round(out_w / scale)))
    top = int(rng.integers(0, region_h - win_h + 1))
    left = int(rng.integers(0, region_w - win_w + 1))
    window = region[top : top + win_h, left : left + win_w]
    if (win_h, win_w) == (out_h, out_w):
        return np.ascontiguousarray(window)
    return cv2.resize(window, (out_w, out_h), interpolation=cv2.INTER_AREA)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def _build(root: Path, seed: int) -> List[str]:
    """Write every image under ``root``; return their paths relative to ``root``."""
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # A stream of its own for the aligned pairs: adding them left the unpaired crops unchanged.
    paired_rng = np.random.default_rng([seed, 1])
    files: List[str] = []

    def save(rel: str, rgb: np.ndarray) -> None:
        _write_png(root / rel, rgb)
        files.append(rel)

    for name in PHOTOS:
        photo = load_photo(name)
        train_region = photo[:, int(photo.shape[1] * HELD_OUT_FRACTION) :]
        if min(train_region.shape[:2]) < CROP_SIDE_RANGE[0]:
            raise RuntimeError(
                f"photo {name!r} of shape {photo.shape} is too small for "
                f"{CROP_SIDE_RANGE[0]} px training crops"
            )
        for k in range(CROPS_PER_PHOTO):
            save(f"train/source/src_{name}_{k:02d}.png", random_crop(train_region, rng))
        for k in range(CROPS_PER_PHOTO):
            crop = random_crop(train_region, rng)
            save(f"train/target/ref_{name}_{k:02d}.png", retouch_uint8(crop))
        for k in range(CROPS_PER_PHOTO):
            crop = random_crop(train_region, paired_rng)
            save(f"train_paired/source/{name}_{k:02d}.png", crop)
            save(f"train_paired/target/{name}_{k:02d}.png", retouch_uint8(crop))
        for split, piece in zip(("val", "test"), held_out_pieces(photo)):
            save(f"{split}/source/{name}.png", piece)
            save(f"{split}/target/{name}.png", retouch_uint8(piece))
    return files


def count_images(out_dir: Path) -> Dict[str, int]:
    """Number of PNG files in each dataset folder, keyed like ``'train/source'``."""
    return {folder: len(list((out_dir / folder).glob("*.png"))) for folder in FOLDERS}


def is_complete(out_dir: Path) -> bool:
    """True when ``out_dir`` holds a manifest from this script and every file it lists."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (
        manifest.get("format_version") == FORMAT_VERSION
        and bool(files)
        and all((out_dir / rel).is_file() for rel in files)
    )


def make_demo_dataset(
    out_dir: Path | str = DEFAULT_OUTPUT, seed: int = 0, overwrite: bool = False
) -> Dict[str, int]:
    """Build the demo dataset at ``out_dir`` (see the module docstring) and return its counts.

    A complete dataset already at ``out_dir`` is kept as it is unless ``overwrite``. A folder
    there that this script did not make (no manifest) and is not empty is never replaced.

    Returns:
        Image counts per folder, e.g. ``{'train/source': 60, ..., 'test/target': 5}``.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir) and not overwrite:
        built_with = json.loads((out_dir / MANIFEST).read_text()).get("seed")
        print(
            f"Demo dataset at {out_dir} is complete (seed {built_with}); nothing to do. "
            "Pass --overwrite to rebuild it."
        )
        return count_images(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise FileExistsError(f"--output {out_dir} exists and is not a folder")
        if not (out_dir / MANIFEST).exists() and any(out_dir.iterdir()):
            raise FileExistsError(
                f"--output {out_dir} is a non-empty folder that this script did not create "
                f"(no {MANIFEST}); remove it or choose another --output"
            )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        files = _build(staging, seed)
        manifest = {
            "format_version": FORMAT_VERSION,
            "seed": seed,
            "files": sorted(files),
            "counts": count_images(staging),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if out_dir.exists():
            # Move the old dataset aside first, so the new one appears in one rename.
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "dataset")
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    counts = count_images(out_dir)
    print(
        f"Demo dataset written to {out_dir} (seed {seed}): "
        + ", ".join(f"{folder} {n}" for folder, n in counts.items())
    )
    return counts


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the offline demo dataset (scikit-image photos + a fixed retouch)."
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"dataset folder (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the training crops")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="rebuild even when a complete dataset is already there",
    )
    args = parser.parse_args(argv)
    try:
        make_demo_dataset(args.output, args.seed, args.overwrite)
    except (FileExistsError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
