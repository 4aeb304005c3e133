"""Peak memory and time of ``lptn-enhance`` on a 4K photo and a 100-megapixel photo.

Usage (from the repository root)::

    python benchmarks/bench_enhance_memory.py [--megapixels 100] [--workdir /tmp/lptn-bench]
        [-- extra lptn-enhance options, e.g. --path exact or --memory-budget 512]

The photos are a real FiveK photo upscaled (bicubic) to 2160x3840 (PNG) and to about
100 MP (JPEG, 3:4). Each is enhanced by a fresh ``python -m lptn.enhance`` process with default
options; its peak resident memory (the whole process: interpreter, PyTorch, decoded image,
output, encoder buffers) is read from the kernel (``ru_maxrss`` of the child).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "models" / "net_g_FiveK_numhigh3.pth"
PHOTO = REPO.parent / "shared" / "data" / "fivek_sample" / "source" / "a1305.png"


def make_photos(workdir: Path, megapixels: float) -> list:
    import cv2

    img = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
    workdir.mkdir(parents=True, exist_ok=True)
    k4 = workdir / "photo_4k.png"
    if not k4.exists():
        cv2.imwrite(str(k4), cv2.resize(img, (3840, 2160), interpolation=cv2.INTER_CUBIC))
    h = int(math.sqrt(megapixels * 1e6 * 3 / 4))
    w = int(h * 4 / 3)
    big = workdir / f"photo_{megapixels:g}mp.jpg"
    if not big.exists():
        cv2.imwrite(
            str(big),
            cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
    return [k4, big]


def run_enhance(photo: Path, out: Path, extra: list) -> dict:
    """One fresh enhance process; returns its wall time and peak RSS."""
    cmd = [
        sys.executable,
        "-m",
        "lptn.enhance",
        "--weights",
        str(WEIGHTS),
        "--input",
        str(photo),
        "--output",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    # A child of its own per run, so ru_maxrss of RUSAGE_CHILDREN is that run's peak when it
    # is the largest so far; run the small photo first.
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    tiled = [line for line in proc.stdout.splitlines() if "tiled" in line]
    return {
        "returncode": proc.returncode,
        "wall_s": wall,
        "peak_rss_mb": peak_kb / 1024,
        "tiled": tiled[0].split(": ", 2)[-1] if tiled else "no",
        "stderr": proc.stderr.strip()[-500:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lptn-bench"))
    parser.add_argument("extra", nargs="*", help="options passed to lptn-enhance (after --)")
    args = parser.parse_args()
    photos = make_photos(args.workdir, args.megapixels)
    for photo in photos:  # smallest first: see run_enhance
        import cv2

        h, w = cv2.imread(str(photo), cv2.IMREAD_REDUCED_COLOR_8).shape[:2]
        r = run_enhance(photo, args.workdir / "out", args.extra)
        print(
            f"{photo.name} (about {h * 8}x{w * 8}, {photo.stat().st_size / 1e6:.1f} MB file): "
            f"exit {r['returncode']}, {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
            f" (whole process); tiled: {r['tiled']}"
        )
        if r["returncode"] != 0:
            print(r["stderr"])


if __name__ == "__main__":
    main()
