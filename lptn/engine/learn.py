"""``lptn-learn``: a folder of before photos and one of after photos in, a model out.

The steps a photographer would otherwise do by hand, in order:

1. Pair the folders by stem (:mod:`lptn.data.pairing`): the after side's name pattern is
   ``--after-name`` or, by default, detected (``IMG_1.jpg`` / ``IMG_1_edited.jpg`` gives
   ``'{stem}_edited'``).
2. Hold out ``--val-fraction`` of the pairs, drawn by ``--seed`` (the same folders and seed give
   the same split), written as ``experiments/{name}.train.txt`` / ``.val.txt``.
3. Write ``experiments/{name}.yml``, a plain training option file (:func:`recipe_options`):
   ``python train.py -opt experiments/{name}.yml`` runs the same training.
4. Train it through :func:`lptn.engine.cli.train_main`, the code of ``train.py``: the data
   check, the experiment lock, resume (``--auto_resume``) and every fault report apply.
5. Save the moving average of the best validation as ``experiments/{name}/{name}.pth`` (one
   entry, so ``lptn-enhance``, ``lptn-serve`` and ``lptn-export`` take it without
   ``--param-key``), measure identity and model on the held-out pairs, print both and the
   ``lptn-enhance`` command.
"""

from __future__ import annotations

import random
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from lptn.data.file_backends import make_file_backend
from lptn.data.pairing import STEM, NamePattern, match_pairs, refuse_same_folder
from lptn.platform.atomic_file import write_text_atomic

#: the held-out metrics, in the order they are printed (the metrics registry's names)
HELD_OUT_METRICS: Dict[str, Dict[str, Any]] = {
    "psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False},
    "ssim": {"type": "calculate_ssim", "crop_border": 0, "test_y_channel": False},
    "deltae": {"type": "calculate_deltae", "crop_border": 0},
}
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_ITERATIONS = 1000
DEFAULT_SEED = 0
#: ``pair_size`` of the recipe: photographers' export presets often cap the size
DEFAULT_PAIR_SIZE = "resize_gt"
EXPERIMENTS = "experiments"


@dataclass(frozen=True)
class LearnSettings:
    """What ``lptn-learn`` was asked for (the command's arguments)."""

    before: Path
    after: Path
    name: str
    after_name: Optional[str] = None  # None: detected from the file names
    before_name: str = STEM
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = DEFAULT_SEED
    iterations: int = DEFAULT_ITERATIONS
    pair_size: str = DEFAULT_PAIR_SIZE

    def check(self) -> None:
        """Raise ValueError naming the argument that is out of range."""
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be within (0, 1), got {self.val_fraction}")
        if self.iterations < 1:
            raise ValueError(f"--iterations must be at least 1, got {self.iterations}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"--name must be a plain folder name, got {self.name!r}")
        for flag, folder in (("--before", self.before), ("--after", self.after)):
            if not folder.is_dir():
                raise FileNotFoundError(f"{flag} {folder}: not a folder")


@dataclass(frozen=True)
class LearnFiles:
    """Where one ``lptn-learn`` run writes, under ``root`` (the working folder)."""

    root: Path
    name: str

    @property
    def options(self) -> Path:
        return self.root / EXPERIMENTS / f"{self.name}.yml"

    def split(self, part: str) -> Path:
        """``part`` is ``train`` or ``val``: the list of stems of that part."""
        return self.root / EXPERIMENTS / f"{self.name}.{part}.txt"

    @property
    def experiment(self) -> Path:
        return self.root / EXPERIMENTS / self.name

    @property
    def best(self) -> Path:
        return self.experiment / "models" / "net_g_best.pth"

    @property
    def model(self) -> Path:
        return self.experiment / f"{self.name}.pth"


def detect_after_name(before_stems: Sequence[str], after_stems: Sequence[str]) -> str:
    """The ``{stem}`` pattern that pairs most after names with a before name.

    An after name equal to a before name gives ``'{stem}'``; one that starts (ends) with a
    before name gives ``'{stem}<rest>'`` (``'<rest>{stem}'``), the longest before name
    winning. Names that fit no pattern are left to :func:`match_pairs` to list.
    """
    known = set(before_stems)
    votes: Counter[str] = Counter()
    for name in after_stems:
        if name in known:
            votes[STEM] += 1
            continue
        heads = [s for s in known if name.startswith(s)]
        tails = [s for s in known if name.endswith(s)]
        if heads:
            votes[STEM + name[len(max(heads, key=len)) :]] += 1
        elif tails:
            votes[name[: len(name) - len(max(tails, key=len))] + STEM] += 1
    if not votes:
        raise ValueError(
            "no file name in --after starts or ends with a --before name; "
            "give the pattern with --after-name (e.g. '{stem}_edited')"
        )
    return votes.most_common(1)[0][0]


def pair_stems(settings: LearnSettings) -> Tuple[List[str], str]:
    """``(stems of every pair, sorted; the after-name pattern used)``.

    Raises:
        ValueError: the same folder twice, or files that cannot be paired (all listed).
    """
    disk = {"type": "disk"}
    lq = make_file_backend(disk, str(settings.before), "--before")
    gt = make_file_backend(disk, str(settings.after), "--after")
    refuse_same_folder(lq, gt, "lptn-learn", "every photo would be its own target")
    before_pattern = NamePattern(settings.before_name, "--before-name")
    after_text = settings.after_name
    if after_text is None:
        before_stems = [s for k in lq.keys() if (s := before_pattern.stem_of(lq.stem(k)))]
        after_text = detect_after_name(before_stems, [gt.stem(k) for k in gt.keys()])
    after_pattern = NamePattern(after_text, "--after-name")
    pairs = match_pairs(gt, lq, (before_pattern, after_pattern), "lptn-learn")
    stems = [str(after_pattern.stem_of(gt.stem(g))) for g, _ in pairs]
    return sorted(stems), after_text


def split_stems(stems: Sequence[str], val_fraction: float, seed: int) -> Tuple[List, List]:
    """``(train stems, val stems)``: ``round(n * val_fraction)`` pairs (at least one, and at
    least one left to train on) drawn by ``seed``; each part sorted."""
    if len(stems) < 2:
        raise ValueError(f"lptn-learn needs at least 2 pairs (one to hold out), found {len(stems)}")
    count = min(max(1, round(len(stems) * val_fraction)), len(stems) - 1)
    order = sorted(stems)
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [s for s in sorted(stems) if s not in held], sorted(held)


def recipe_options(settings: LearnSettings, files: LearnFiles, after_name: str) -> Dict[str, Any]:
    """The training option tree of the recipe (see docs/learn.md for why each value).

    Paired LPTN, pixel loss (MSE) against the target, no GAN; the generator starts as the
    identity (``network_g.init: identity``) so the first iterations already give the input
    back and training only learns the edit; an EMA of the weights (``ema_decay``) is what is
    validated and kept. Photos are decoded once into memory (``io_backend: memory``).
    """
    iterations = settings.iterations
    val_freq = max(1, iterations // 6)
    while iterations % val_freq:  # the last iteration is validated
        val_freq -= 1

    def dataset(part: str) -> Dict[str, Any]:
        return {
            "name": f"{settings.name}_{part}",
            "type": "PairedImageDataset",
            "dataroot_lq": str(settings.before.resolve()),
            "dataroot_gt": str(settings.after.resolve()),
            "lq_name": settings.before_name,
            "gt_name": after_name,
            "pair_size": settings.pair_size,
            "meta_info_file": str(files.split(part).resolve()),
            "io_backend": {"type": "memory"},
        }

    train = dataset("train")
    train.update(
        {
            "gt_size": 128,
            "small_image": "resize",
            "use_flip": True,
            "use_rot": True,
            "use_shuffle": True,
            "num_worker_per_gpu": 0,
            "batch_size_per_gpu": 4,
            "dataset_enlarge_ratio": 100,
            "pin_memory": False,
        }
    )
    return {
        "name": settings.name,
        "model_type": "LPTNModel",
        "num_gpu": "auto",
        "manual_seed": settings.seed,
        "datasets": {"train": train, "val": dataset("val")},
        "network_g": {
            "type": "LPTN",
            "nrb_low": 5,
            "nrb_high": 3,
            "num_high": 3,
            "init": "identity",
        },
        "path": {"pretrain_network_g": None, "resume_state": None},
        "train": {
            "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
            "scheduler": {
                "type": "MultiStepLR",
                "milestones": [int(iterations * 0.7)],
                "gamma": 0.5,
            },
            "total_iter": iterations,
            "warmup_iter": min(50, iterations // 10),
            "ema_decay": 0.99,
            "pixel_target": "gt",
            "pixel_opt": {"type": "MSELoss", "loss_weight": 1, "reduction": "mean"},
        },
        "val": {"val_freq": val_freq, "save_img": False, "metrics": HELD_OUT_METRICS},
        "logger": {"print_freq": max(1, val_freq // 2), "save_checkpoint_freq": val_freq},
    }


def write_learn_files(settings: LearnSettings, files: LearnFiles) -> Dict[str, Any]:
    """Pair, split and write the split lists and the option file; returns the options."""
    stems, after_name = pair_stems(settings)
    train, val = split_stems(stems, settings.val_fraction, settings.seed)
    files.options.parent.mkdir(parents=True, exist_ok=True)
    for part, names in (("train", train), ("val", val)):
        write_text_atomic(files.split(part), "".join(f"{s}\n" for s in names))
    opt = recipe_options(settings, files, after_name)
    head = (
        f"# Written by lptn-learn --before {settings.before} --after {settings.after} "
        f"--name {settings.name}: {len(train)} pairs train, {len(val)} are held out "
        f"(seed {settings.seed}).\n# Reusable as: python train.py -opt {files.options}\n"
    )
    write_text_atomic(files.options, head + yaml.safe_dump(opt, sort_keys=False))
    return opt


def keep_model(files: LearnFiles) -> Path:
    """``{name}.pth``: the moving average of the best validation, as the one entry ``params``."""
    from lptn.platform.checkpoint_io import (
        ARCH_KEY,
        CheckpointError,
        read_arch_options,
        read_state_dict,
        save_atomic,
    )

    source = files.best
    if not source.is_file():  # no validation improved on nothing: take the last weights
        source = files.experiment / "models" / "net_g_latest.pth"
    try:
        state = read_state_dict(source, "params_ema")
    except CheckpointError:  # trained without EMA (an edited option file)
        state = read_state_dict(source)
    arch = read_arch_options(source)
    save_atomic({"params": state, **({ARCH_KEY: arch} if arch else {})}, files.model)
    return files.model


def held_out_scores(
    opt: Dict[str, Any], weights: Path, device: torch.device
) -> Tuple[Dict[str, float], Dict[str, float], int]:
    """``(identity means, model means, pairs)`` of :data:`HELD_OUT_METRICS` on the val set.

    The identity is the input itself measured against the target; both are quantised to
    8 bits first, as validation measures.
    """
    from lptn.data import build_dataset
    from lptn.data.image_io import tensor_to_image
    from lptn.engine.evaluate import mean_metric
    from lptn.inference.generator_weights import load_generator
    from lptn.metrics import calculate_metric

    dataset = build_dataset(opt["datasets"]["val"], "datasets.val")
    net = load_generator(weights).to(device).eval()
    sums: Dict[str, Dict[str, List[float]]] = {"identity": {}, "model": {}}
    count = len(dataset)  # type: ignore[arg-type]
    with torch.inference_mode():
        for index in range(count):
            item = dataset[index]
            lq = item["lq"].unsqueeze(0).to(device)
            outputs = {"identity": item["lq"], "model": net(lq)[0].float().cpu()}
            gt = tensor_to_image(item["gt"])
            for who, out in outputs.items():
                img = tensor_to_image(out)
                for key, metric in HELD_OUT_METRICS.items():
                    value = calculate_metric({"img": img, "img2": gt}, metric, f"held-out {key}")
                    sums[who].setdefault(key, []).append(value)
    means = {who: {k: mean_metric(v) for k, v in m.items()} for who, m in sums.items()}
    return means["identity"], means["model"], count


def score_lines(identity: Dict[str, float], model: Dict[str, float], pairs: int) -> List[str]:
    """The final printout's table (PSNR dB, SSIM, ΔE76)."""
    labels = {"psnr": "PSNR (dB)", "ssim": "SSIM", "deltae": "ΔE76"}
    formats = {"psnr": "{:.2f}", "ssim": "{:.4f}", "deltae": "{:.2f}"}
    lines = [f"held-out pairs: {pairs}", f"{'':10} {'identity':>9} {'model':>9}"]
    for key, label in labels.items():
        fmt = formats[key]
        lines.append(f"{label:10} {fmt.format(identity[key]):>9} {fmt.format(model[key]):>9}")
    return lines


def enhance_command(model: Path) -> str:
    """The ``lptn-enhance`` command line that applies the trained ``model`` to a folder."""
    return f"lptn-enhance --weights {shlex.quote(str(model))} --input PHOTOS --output FOLDER"


__all__ = [
    "DEFAULT_ITERATIONS",
    "DEFAULT_PAIR_SIZE",
    "DEFAULT_SEED",
    "DEFAULT_VAL_FRACTION",
    "HELD_OUT_METRICS",
    "LearnFiles",
    "LearnSettings",
    "detect_after_name",
    "enhance_command",
    "held_out_scores",
    "keep_model",
    "pair_stems",
    "recipe_options",
    "score_lines",
    "split_stems",
    "write_learn_files",
]
