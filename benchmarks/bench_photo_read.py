"""Time the training data reader against the plain OpenCV decode it replaced.

Usage (from the repository root)::

    python benchmarks/bench_photo_read.py [--fivek DIR] [--passes 15]

Decodes every FiveK sample photo (``--fivek``, default ``$LPTN_SHARED_DIR/data/fivek_sample``:
source and target PNGs, and the same pixels re-encoded as JPEG quality 95 in memory) with
:func:`lptn.data.image_io.decode_image` (the photo reader: orientation, colour profile, bit
depth) and with ``cv2.imdecode(IMREAD_UNCHANGED)`` + BGR->RGB (what the datasets did before).
The two alternate pass by pass so that the load of a shared machine falls on both, each pass
after a few untimed decodes (the first decodes after the other library ran are slower); the
best pass of each is reported, in ms per image.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# the shared data folder, found as the tests find it
SHARED = Path(os.environ.get("LPTN_SHARED_DIR") or REPO.parent / "shared")

from lptn.data.image_io import decode_image  # noqa: E402


def opencv_decode(data: bytes) -> np.ndarray:
    """The datasets' former reader: pixels as stored, no orientation, no colour profile."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def photo_reader(data: bytes) -> np.ndarray:
    return decode_image(data, "benchmark")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fivek", type=Path, default=SHARED / "data" / "fivek_sample")
    parser.add_argument("--passes", type=int, default=15, help="passes per reader (default 15)")
    args = parser.parse_args()

    files = sorted(args.fivek.glob("*/*.png"))
    if not files:
        print(f"no PNG files under {args.fivek}", file=sys.stderr)
        return 2
    pngs = [path.read_bytes() for path in files]
    jpegs = [
        cv2.imencode(".jpg", cv2.imread(str(path)), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        for path in files
    ]
    readers: Dict[str, Callable[[bytes], np.ndarray]] = {
        "photo reader (now)": photo_reader,
        "OpenCV decode (before)": opencv_decode,
    }
    best: Dict[str, float] = {}
    for _ in range(args.passes):
        for kind, blobs in (("PNG", pngs), ("JPEG", jpegs)):
            for name, read in readers.items():
                for data in blobs[:4]:  # untimed: the switch from the other library settles
                    read(data)
                start = time.perf_counter()
                for data in blobs:
                    read(data)
                per_image = (time.perf_counter() - start) / len(blobs) * 1e3
                key = f"{kind:4s} {name}"
                best[key] = min(best.get(key, float("inf")), per_image)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"python {platform.python_version()}, torch {torch.__version__}; {len(files)} images, "
        f"best of {args.passes} passes"
    )
    lines: List[str] = [f"{key}: {value:6.2f} ms per image" for key, value in best.items()]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
