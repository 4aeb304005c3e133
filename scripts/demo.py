"""`make demo`: the whole workflow on built-in data, no download, CPU or GPU.

1. build the demo dataset (scikit-image photos -> a fixed retouch), 2. train LPTN unpaired,
3. evaluate with test.py, 4. time with test_speed.py, 5. enhance a photo with lptn-enhance,
then print PSNR/SSIM before (identity) and after, and where everything is.
Each step runs the same command a user would type, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lptn.data.image_io import read_image  # noqa: E402
from lptn.metrics import calculate_psnr, calculate_ssim  # noqa: E402

TRAIN_OPT = "options/train/LPTN/train_demo.yml"
TEST_OPT = "options/test/LPTN/test_demo.yml"
NAME = "LPTN_demo"


def run(*args: str) -> None:
    print(f"\n$ python {' '.join(shlex.quote(a) for a in args)}", flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


def identity_scores(folder: Path) -> dict:
    psnr, ssim = [], []
    for src in sorted((folder / "source").glob("*.png")):
        a, b = read_image(src), read_image(folder / "target" / src.name)
        psnr.append(calculate_psnr(a, b))
        ssim.append(calculate_ssim(a, b))
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def main() -> int:
    data = ROOT / "datasets" / "demo"
    run("scripts/data_preparation/make_demo_dataset.py", "--output", str(data))
    run("train.py", "-opt", TRAIN_OPT)
    run("test.py", "-opt", TEST_OPT)
    run("test_speed.py", "-opt", TEST_OPT, "--set", f"path.results_root=results/{NAME}_speed")
    photo = sorted((data / "test" / "source").glob("*.png"))[0]
    weights = f"experiments/{NAME}/models/net_g_best.pth"
    run(
        "-m",
        "lptn.enhance",
        "--weights",
        weights,
        "--input",
        str(photo),
        "--output",
        f"results/{NAME}/enhanced",
    )

    before = identity_scores(data / "test")
    after = json.loads((ROOT / "results" / NAME / "metrics.json").read_text())["demo_test"]["mean"]
    speed = json.loads((ROOT / "results" / f"{NAME}_speed" / "speed.json").read_text())
    print("\n=== LPTN demo: results ===")
    print(
        f"demo test set ({len(list((data / 'test' / 'source').glob('*.png')))} pairs), RGB, "
        "no border crop:"
    )
    print(f"  identity (input vs target): PSNR {before['psnr']:.2f} dB  SSIM {before['ssim']:.4f}")
    print(f"  trained LPTN:               PSNR {after['psnr']:.2f} dB  SSIM {after['ssim']:.4f}")
    for size, stats in speed["sizes"].items():
        print(
            f"  speed {size}: {stats['median_ms']:.1f} ms median on {speed['device']} "
            f"({speed['precision']})"
        )
    print(f"\n  training log, checkpoints:  experiments/{NAME}/")
    print(f"  validation images:          experiments/{NAME}/visualization/")
    print(
        f"  test outputs, metrics:      results/{NAME}/ (visualization/, comparison/, metrics.json)"
    )
    print(f"  enhanced photo:             results/{NAME}/enhanced/{photo.name}")
    print(f"  TensorBoard:                tensorboard --logdir tb_logger/{NAME}")
    if after["psnr"] <= before["psnr"]:
        print("\nThe trained model did not beat the identity on the demo test set.")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
