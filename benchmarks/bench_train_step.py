"""Time one training step of the released recipe (G + D + gradient penalty) in variants.

Usage (from the repository root)::

    python benchmarks/bench_train_step.py [--batch 16] [--crop 256] [--steps 20] [--device cuda]
                                          [--compile] [--variants NAME ...]

Variants, run in alternation so machine load affects all alike (medians reported):
``recompute`` (the original: G runs again for the D step, fp32), ``reuse``
(``train.d_step_input: reuse``: one generator forward less), ``reuse+bf16`` (autocast bf16),
``reuse+channels_last`` (``train.channels_last``), ``reuse+fused`` (``fused: true`` Adam for
both networks), ``reuse+bf16+channels_last+fused``, and with ``--compile`` only (compiling
takes minutes on a CPU) ``reuse+bf16+compile`` (``train.compile: true``, the generator
compiled; its first step, which compiles, is printed too) and
``reuse+bf16+channels_last+fused+compile`` (everything together). ``--warmup`` steps are not timed.
Inputs are real photos (scikit-image's astronaut and coffee) cropped at random: the step
time does not depend on pixel values, but NaN-free real data keeps the step realistic.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lptn.models import build_model  # noqa: E402
from lptn.platform.options import parse_options  # noqa: E402
from lptn.platform.runtime import build_training_runtime  # noqa: E402

BF16 = {"enabled": True, "dtype": "bf16"}
FUSED = {"train.optim_g.fused": True, "train.optim_d.fused": True}
VARIANTS = {
    "recompute": {"train.d_step_input": "recompute"},
    "reuse": {"train.d_step_input": "reuse"},
    "reuse+bf16": {"train.d_step_input": "reuse", "train.amp": BF16},
    "reuse+channels_last": {"train.d_step_input": "reuse", "train.channels_last": True},
    "reuse+fused": {"train.d_step_input": "reuse", **FUSED},
    "reuse+bf16+channels_last+fused": {
        "train.d_step_input": "reuse",
        "train.amp": BF16,
        "train.channels_last": True,
        **FUSED,
    },
}
#: variants that compile (minutes on a CPU): only run with --compile
COMPILE_VARIANTS = {
    "reuse+bf16+compile": {"train.d_step_input": "reuse", "train.amp": BF16, "train.compile": True},
    "reuse+bf16+channels_last+fused+compile": {
        "train.d_step_input": "reuse",
        "train.amp": BF16,
        "train.channels_last": True,
        **FUSED,
        "train.compile": True,
    },
}


def photo_batch(batch: int, crop: int, rng: np.random.Generator) -> torch.Tensor:
    from skimage import data as skdata

    photos = [skdata.astronaut(), skdata.coffee()]
    crops = []
    for i in range(batch):
        img = photos[i % len(photos)]
        y = int(rng.integers(0, img.shape[0] - crop + 1))
        x = int(rng.integers(0, img.shape[1] - crop + 1))
        crops.append(img[y : y + crop, x : x + crop].astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def build(base: Dict, overrides: Dict, device: str):
    opt = copy.deepcopy(base)
    opt["device"] = device
    for key_path, value in overrides.items():
        node = opt
        *parents, last = key_path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    runtime = build_training_runtime(opt)
    return build_model(opt, runtime), runtime


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--compile", action="store_true", help="also run the torch.compile variants (slow to start)"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS) + list(COMPILE_VARIANTS),
        help="the variants to run, the first is the reference (default: all, "
        "the compile ones only with --compile)",
    )
    args = parser.parse_args(argv)
    if args.variants is None:
        args.variants = list(VARIANTS) + (list(COMPILE_VARIANTS) if args.compile else [])
    elif not args.compile and any(v in COMPILE_VARIANTS for v in args.variants):
        parser.error("the compile variants need --compile")
    all_variants = {**VARIANTS, **COMPILE_VARIANTS}
    base = parse_options(
        REPO / "options/train/LPTN/train_FiveK.yml", is_train=True, root="/tmp/lptn-bench"
    )
    rng = np.random.default_rng(0)
    lq, ref = photo_batch(args.batch, args.crop, rng), photo_batch(args.batch, args.crop, rng)
    models = {name: build(base, all_variants[name], args.device) for name in args.variants}
    times: Dict[str, List[float]] = {name: [] for name in args.variants}
    first_step: Dict[str, float] = {}
    for step in range(args.warmup + args.steps):
        for name, (model, runtime) in models.items():
            model.feed_data({"lq": lq, "ref": ref})
            runtime.synchronize()
            start = time.perf_counter()
            model.optimize_parameters(step + 1)
            runtime.synchronize()
            elapsed = (time.perf_counter() - start) * 1e3
            if step == 0:
                first_step[name] = elapsed
            if step >= args.warmup:
                times[name].append(elapsed)
    runtime = next(iter(models.values()))[1]
    print(
        f"training step, batch {args.batch}, {args.crop}x{args.crop}, G + D + GP, "
        f"{runtime.device_name()}, torch {torch.__version__}"
    )
    first = statistics.median(times[args.variants[0]])
    for name in args.variants:
        median = statistics.median(times[name])
        note = (
            f"   (first step, compiling: {first_step[name] / 1e3:.1f} s)"
            if name in COMPILE_VARIANTS
            else ""
        )
        print(
            f"  {name:30s} median {median:9.1f} ms   x{first / median:4.2f} vs "
            f"{args.variants[0]}{note}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
