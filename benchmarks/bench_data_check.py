"""Time the start-up data check of a training set of many photo pairs.

Usage (from the repository root)::

    python benchmarks/bench_data_check.py [--pairs 5000] [--size 341 512] [--threads 4]
                                          [--fivek DIR] [--keep DIR]

Writes ``--pairs`` input/target JPEG pairs of ``--size`` (HxW; default 341x512, the size of the
FiveK 480p photos) into a temporary folder (``--keep DIR``: there, and kept), named as an
editor exports them (``IMG_n.jpg`` / ``IMG_n_edited.jpg``). The pixels are the FiveK sample
photos (``--fivek``, default ``$LPTN_SHARED_DIR/data/fivek_sample``) resized to that size,
JPEG quality 85, repeated under new names: the check reads headers only, so distinct content
would change nothing. Then it times what ``train.py`` does before
the first iteration: building the ``PairedImageDataset`` (listing and pairing the names) and
``survey_images`` (every header read, sizes and pairs checked), and, for comparison, a full
decode of ``--decode-sample`` images through the same reader, extrapolated to the set.
The files are in the page cache (just written): a cold disk adds its read time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# the shared data folder, found as the tests find it
SHARED = Path(os.environ.get("LPTN_SHARED_DIR") or REPO.parent / "shared")

from lptn.data import build_dataset  # noqa: E402
from lptn.data.dataset_base import SeededImageDataset  # noqa: E402


def base_jpegs(fivek: Path, size: List[int]) -> List[bytes]:
    """JPEG bytes of every FiveK sample photo at ``size`` (HxW), or of smooth noise without it."""
    height, width = size
    photos = []
    folder = fivek / "source"
    for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
        photos.append(cv2.resize(cv2.imread(str(path)), (width, height)))
    if not photos:
        rng = np.random.default_rng(0)
        coarse = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
        photos = [cv2.resize(coarse, (width, height)).astype(np.uint8)]
    encoded = []
    for img in photos:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        assert ok
        encoded.append(buf.tobytes())
    return encoded


def write_pairs(root: Path, pairs: int, jpegs: List[bytes]) -> None:
    (root / "lq").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        data = jpegs[i % len(jpegs)]
        (root / "lq" / f"IMG_{i:05d}.jpg").write_bytes(data)
        (root / "gt" / f"IMG_{i:05d}_edited.jpg").write_bytes(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000, help="photo pairs (default 5000)")
    parser.add_argument("--size", type=int, nargs=2, default=[341, 512], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=4, help="threads reading headers")
    parser.add_argument("--decode-sample", type=int, default=200, help="images fully decoded")
    parser.add_argument("--fivek", type=Path, default=SHARED / "data" / "fivek_sample")
    parser.add_argument("--keep", type=Path, help="write the pairs here and keep them")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="lptn_data_check_"))
    try:
        start = time.perf_counter()
        jpegs = base_jpegs(args.fivek, args.size)
        write_pairs(root, args.pairs, jpegs)
        generated = time.perf_counter() - start
        opt = {
            "type": "PairedImageDataset",
            "phase": "train",
            "dataroot_lq": str(root / "lq"),
            "dataroot_gt": str(root / "gt"),
            "gt_name": "{stem}_edited",
            "io_backend": {"type": "disk"},
            "gt_size": 256,
            "batch_size_per_gpu": 16,
        }
        start = time.perf_counter()
        dataset = build_dataset(opt, "datasets.train")
        assert isinstance(dataset, SeededImageDataset)
        built = time.perf_counter() - start
        start = time.perf_counter()
        survey = dataset.survey_images(9, "network_g.num_high=3", threads=args.threads)
        checked = time.perf_counter() - start
        survey.raise_problems()
        sample = [item for group in dataset.image_groups() for item in group]
        sample = sample[: args.decode_sample]
        start = time.perf_counter()
        for backend, key in sample:
            backend.read_image(key)
        per_decode = (time.perf_counter() - start) / max(1, len(sample))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    images = survey.count
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"python {platform.python_version()}, torch {torch.__version__}"
    )
    source = f"{len(jpegs)} FiveK sample photos" if len(jpegs) > 1 else "smooth noise"
    print(
        f"{args.pairs} JPEG pairs of {args.size[0]}x{args.size[1]} (HxW) from {source}, "
        f"{sum(map(len, jpegs)) // len(jpegs) // 1024} KiB each, written in {generated:.1f} s"
    )
    print(f"dataset build (list + pair names):   {built:7.2f} s")
    print(
        f"header check ({images} images, {args.threads} threads): {checked:7.2f} s "
        f"({checked / images * 1e3:.2f} ms per image)"
    )
    print(
        f"full decode, for comparison:         {per_decode * images:7.2f} s "
        f"({per_decode * 1e3:.2f} ms per image, {len(sample)} decoded)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
