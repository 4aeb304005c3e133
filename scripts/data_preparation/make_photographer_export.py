"""Write the FiveK sample as a photographer's export: a ``before`` and an ``after`` folder.

What a photo editor's export looks like, built from ``shared/data/fivek_sample/{source,target}``
(the originals are read, never copied into the repository):

- ``before/``: camera-style JPEGs (quality 95, EXIF Make/Model/DateTime) named ``{stem}.jpg``;
  every third one is stored sideways, pixels turned 90 degrees counter-clockwise with EXIF
  Orientation 6 (the camera held upright: a viewer turns it back); every fifth one is a 16-bit
  RGB TIFF ``{stem}.tif`` instead (what a RAW converter writes).
- ``after/``: the expert's retouch as ``{stem}_edited.jpg`` (quality 95, always stored upright);
  every fourth one at half the size (an export preset with a long-side limit), so training
  needs ``pair_size: resize_gt``.

Usage: ``python scripts/data_preparation/make_photographer_export.py --out DIR
[--sample shared/data/fivek_sample] [--count N]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np
from PIL import Image

SIDEWAYS_EVERY = 3
TIFF_EVERY = 5
HALF_SIZE_EVERY = 4
JPEG_QUALITY = 95
ORIENTATION_TAG = 0x0112


def _camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Example Camera Co."  # Make
    exif[0x0110] = "EX-1"  # Model
    exif[0x0132] = "2026:06:01 10:00:00"  # DateTime
    exif[ORIENTATION_TAG] = orientation
    return exif


def write_before(rgb: np.ndarray, folder: Path, stem: str, index: int) -> Path:
    """The input as a camera would store it; ``rgb`` is the upright ``HxWx3`` uint8 photo."""
    if index % TIFF_EVERY == TIFF_EVERY - 1:
        path = folder / f"{stem}.tif"
        wide = rgb.astype(np.uint16) * 257  # 0..255 -> 0..65535, as a 16-bit converter spans it
        if not cv2.imwrite(str(path), np.ascontiguousarray(wide[..., ::-1])):
            raise OSError(f"cannot write {path}")
        return path
    path = folder / f"{stem}.jpg"
    if index % SIDEWAYS_EVERY == SIDEWAYS_EVERY - 1:
        # Orientation 6 means "turn 90 degrees clockwise to view", so the stored pixels are
        # the upright photo turned counter-clockwise.
        stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
        stored.save(path, quality=JPEG_QUALITY, exif=_camera_exif(6))
    else:
        Image.fromarray(rgb).save(path, quality=JPEG_QUALITY, exif=_camera_exif(1))
    return path


def write_after(rgb: np.ndarray, folder: Path, stem: str, index: int) -> Path:
    """The retouched photo as an editor exports it (``{stem}_edited.jpg``)."""
    img = Image.fromarray(rgb)
    if index % HALF_SIZE_EVERY == HALF_SIZE_EVERY - 1:
        img = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    path = folder / f"{stem}_edited.jpg"
    img.save(path, quality=JPEG_QUALITY)
    return path


def make_export(sample: Path, out: Path, count: Optional[int] = None) -> List[str]:
    """Write ``out/before`` and ``out/after`` from the sample's pairs; returns the stems."""
    sources = sorted((sample / "source").glob("*.png"))[:count]
    if not sources:
        raise FileNotFoundError(f"{sample / 'source'}: no PNG photos")
    before, after = out / "before", out / "after"
    before.mkdir(parents=True, exist_ok=True)
    after.mkdir(parents=True, exist_ok=True)
    stems = []
    for index, source in enumerate(sources):
        target = sample / "target" / source.name
        with Image.open(source) as src, Image.open(target) as tgt:
            src_rgb = np.asarray(src.convert("RGB"))
            tgt_rgb = np.asarray(tgt.convert("RGB"))
        write_before(src_rgb, before, source.stem, index)
        write_after(tgt_rgb, after, source.stem, index)
        stems.append(source.stem)
    return stems


def main(argv: Optional[List[str]] = None) -> int:
    default_sample = Path(__file__).resolve().parents[3] / "shared" / "data" / "fivek_sample"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for before/ and after/")
    parser.add_argument("--sample", type=Path, default=default_sample, help="the FiveK sample")
    parser.add_argument("--count", type=int, help="only the first N pairs (default: all)")
    args = parser.parse_args(argv)
    stems = make_export(args.sample, args.out, args.count)
    print(f"{len(stems)} pairs written to {args.out / 'before'} and {args.out / 'after'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
