"""`make demo`: the whole workflow on built-in data, no download, CPU or GPU.

1. build the demo dataset (scikit-image photos -> a fixed retouch),
2. train LPTN on aligned pairs (pixel loss: the retouch is learnt in a couple of minutes),
3. train LPTN with the released unpaired recipe (WGAN-GP), shortened: a warm-up in which the
   generator learns to reproduce its input, then the critic and the generator on unpaired
   crops,
4. evaluate both with test.py, 5. time with test_speed.py, 6. enhance a photo with lptn-enhance,
then print PSNR/SSIM of the identity (the input itself) and of each model, write a picture
(input | each model | target for every test pair) and say where everything is.
Each step runs the same command a user would type, so the demo doubles as a tutorial.
Exits 1 when a trained model does not beat the identity on a metric it is gated on: the paired
model on PSNR and SSIM, the unpaired one on PSNR only (its SSIM stays within the run-to-run
spread of the identity's; it is printed, not gated: README, demo section).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from demo_panel import write_panel  # noqa: E402

from lptn.data.image_io import read_image  # noqa: E402
from lptn.metrics import calculate_psnr, calculate_ssim  # noqa: E402

DATA = Path("datasets") / "demo"
TEST_SET = "demo_test"  # datasets.test.name in the test option files
PANEL = Path("results") / "LPTN_demo_panel.png"


@dataclass(frozen=True)
class Stage:
    """One trained model of the demo: its training option files (run in order), test option
    file, experiment name (the last training run's) and the metrics it must beat the identity
    on (the others are printed, not gated)."""

    label: str
    train_opts: Tuple[str, ...]
    test_opt: str
    name: str
    gated: Tuple[str, ...]


STAGES = (
    Stage(
        "LPTN, paired",
        ("options/train/LPTN/train_demo_paired.yml",),
        "options/test/LPTN/test_demo_paired.yml",
        "LPTN_demo_paired",
        ("psnr", "ssim"),
    ),
    Stage(
        "LPTN, unpaired",
        ("options/train/LPTN/train_demo_identity.yml", "options/train/LPTN/train_demo.yml"),
        "options/test/LPTN/test_demo.yml",
        "LPTN_demo",
        # Across 1, 2 and 4 threads the unpaired model's PSNR gain is several times its
        # spread, while its SSIM lands on either side of the identity's (README, demo section).
        ("psnr",),
    ),
)
Scores = Dict[str, float]


def run(*args: str) -> float:
    """Run ``python args...`` in the repository root like a user would; return its seconds."""
    print(f"\n$ python {' '.join(shlex.quote(a) for a in args)}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)
    return time.perf_counter() - start


def identity_scores(folder: Path) -> Dict[str, Scores]:
    """PSNR/SSIM of each source image against its target (RGB, no crop), keyed by stem."""
    scores = {}
    for src in sorted((folder / "source").glob("*.png")):
        a, b = read_image(src), read_image(folder / "target" / src.name)
        scores[src.stem] = {"psnr": calculate_psnr(a, b), "ssim": calculate_ssim(a, b)}
    return scores


def mean_scores(per_image: Dict[str, Scores]) -> Scores:
    return {m: float(np.mean([s[m] for s in per_image.values()])) for m in ("psnr", "ssim")}


def failures(
    label: str, scores: Scores, identity: Scores, gated: Tuple[str, ...] = ("psnr", "ssim")
) -> List[str]:
    """One line per metric of ``gated`` on which ``scores`` does not beat ``identity``."""
    return [
        f"{label} does not beat the identity on {metric.upper()} "
        f"({scores[metric]:.4f} <= {identity[metric]:.4f})"
        for metric in gated
        if not scores[metric] > identity[metric]
    ]


def caption(scores: Scores) -> str:
    return f"{scores['psnr']:.2f} dB / {scores['ssim']:.3f}"


def main() -> int:
    timings: Dict[str, float] = {}
    data = ROOT / DATA
    timings["dataset"] = run("scripts/data_preparation/make_demo_dataset.py", "--output", str(data))
    for stage in STAGES:
        for train_opt in stage.train_opts:
            step = f"train {Path(train_opt).stem.replace('train_', '')}"
            timings[step] = run("train.py", "-opt", train_opt)
    for stage in STAGES:
        timings[f"test {stage.label}"] = run("test.py", "-opt", stage.test_opt)
    # The timing does not depend on the weights; test_demo.yml holds the speed settings.
    speed_name = "LPTN_demo_speed"
    timings["speed"] = run(
        "test_speed.py",
        "-opt",
        STAGES[1].test_opt,
        "--set",
        f"path.results_root=results/{speed_name}",
    )
    photo = sorted((data / "test" / "source").glob("*.png"))[0]
    best = STAGES[0]
    timings["enhance"] = run(
        "-m",
        "lptn.enhance",
        "--weights",
        f"experiments/{best.name}/models/net_g_best.pth",
        "--input",
        str(photo.relative_to(ROOT)),
        "--output",
        f"results/{best.name}/enhanced",
    )

    identity = identity_scores(data / "test")
    before = mean_scores(identity)
    results = {}
    for stage in STAGES:
        metrics = json.loads((ROOT / "results" / stage.name / "metrics.json").read_text())
        results[stage] = metrics[TEST_SET]
    speed = json.loads((ROOT / "results" / speed_name / "speed.json").read_text())

    names = sorted(identity)
    rows, captions = [], []
    for name in names:
        row = [read_image(data / "test" / "source" / f"{name}.png")]
        cap = [f"input {caption(identity[name])}"]
        for stage in STAGES:
            vis = ROOT / "results" / stage.name / "visualization" / TEST_SET / f"{name}.png"
            row.append(read_image(vis))
            cap.append(caption(results[stage]["per_image"][name]))
        row.append(read_image(data / "test" / "target" / f"{name}.png"))
        cap.append("")
        rows.append(row)
        captions.append(cap)
    labels = ["input", *(stage.label for stage in STAGES), "target (retouch)"]
    write_panel(ROOT / PANEL, rows, labels, captions)

    print("\n=== LPTN demo: results ===")
    print(f"demo test set ({len(names)} pairs, never seen in training), RGB, no border crop:")
    identity_label = "identity (input vs target)"
    print(f"  {identity_label:28s} PSNR {before['psnr']:.2f} dB  SSIM {before['ssim']:.4f}")
    problems: List[str] = []
    for stage in STAGES:
        after = results[stage]["mean"]
        ungated = [m.upper() for m in ("psnr", "ssim") if m not in stage.gated]
        note = f"  ({', '.join(ungated)} reported, not gated)" if ungated else ""
        print(
            f"  {stage.label:28s} PSNR {after['psnr']:.2f} dB  SSIM {after['ssim']:.4f}"
            f"   ({after['psnr'] - before['psnr']:+.2f} dB, {after['ssim'] - before['ssim']:+.4f})"
            + note
        )
        problems.extend(failures(stage.label, after, before, stage.gated))
    for size, stats in speed["sizes"].items():
        print(
            f"  speed {size}: {stats['median_ms']:.1f} ms median on {speed['device']} "
            f"({speed['precision']})"
        )
    print("  times: " + ", ".join(f"{step} {secs:.0f} s" for step, secs in timings.items()))

    print(f"\n  picture (input | models | target): {PANEL}")
    for stage in STAGES:
        print(f"  {stage.label}:")
        print(f"    training log, checkpoints: experiments/{stage.name}/")
        print(f"    test outputs, metrics:     results/{stage.name}/ (visualization/, comparison/)")
        report = Path("results") / stage.name / "report.html"
        if (ROOT / report).is_file():
            print(f"    HTML report:               {report}")
        print(f"    TensorBoard:               tensorboard --logdir tb_logger/{stage.name}")
    print(f"  enhanced photo:              results/{best.name}/enhanced/{photo.name}")
    if problems:
        print()
        for line in problems:
            print(f"FAILED: {line}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
