"""The test runner: every ``datasets.test*`` entry through the generator, metrics, images.

Writes ``{results_root}/metrics.json`` as
``{dataset_name: {"mean": {metric: value}, "per_image": {file_name: {metric: value}}}}``,
``metrics.csv`` (one row per image) and, with ``val.save_img``, the outputs as full-resolution
PNG files named like the inputs in ``visualization/{dataset_name}/``.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from lptn.data import build_dataset
from lptn.data.image_io import tensor_to_image, write_image
from lptn.engine.logger import get_logger
from lptn.engine.options import dataset_keys
from lptn.engine.runtime import Runtime
from lptn.metrics import calculate_metric
from lptn.models import build_model


def _mean(values: List[float]) -> float:
    # inf (identical images) would swamp the mean; report it as inf rather than hide it.
    return float(np.mean(values)) if values else math.nan


def _output_name(path: str, suffix: str | None) -> str:
    stem = Path(path).stem
    return f"{stem}_{suffix}.png" if suffix else f"{stem}.png"


def evaluate_dataset(model: Any, dataset: Any, dataset_name: str, val_opt: Dict[str, Any],
                     visualization_dir: Path | None = None,
                     comparison_dir: Path | None = None) -> Dict[str, Any]:
    """Run one dataset; return ``{"mean": {...}, "per_image": {...}}``.

    Outputs go to ``visualization_dir`` and input|output|target panels to ``comparison_dir``
    when they are given.
    """
    metrics = val_opt.get("metrics") or {}
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
    per_image: Dict[str, Dict[str, float]] = {}
    log = get_logger()
    with logging_redirect_tqdm(loggers=[log]):
        for data in tqdm(loader, desc=dataset_name, unit="img", leave=False):
            name = Path(data["lq_path"][0]).stem
            out_img = tensor_to_image(model.enhance(data["lq"])[0].cpu())
            scores = per_image[name] = {}
            if "gt" in data:
                gt_img = tensor_to_image(data["gt"][0])
                for metric_name, metric_opt in metrics.items():
                    scores[metric_name] = calculate_metric(
                        {"img": out_img, "img2": gt_img}, metric_opt, f"val.metrics.{metric_name}")
            if visualization_dir is not None:
                write_image(visualization_dir
                            / _output_name(data["lq_path"][0], val_opt.get("suffix")), out_img)
            if comparison_dir is not None and "gt" in data:
                panel = np.concatenate([tensor_to_image(data["lq"][0]), out_img, gt_img], axis=1)
                write_image(comparison_dir / f"{name}.png", panel)
            log.info("%s %s %s", dataset_name, name,
                     " ".join(f"{k}: {v:.4f}" for k, v in scores.items()))
    mean = {m: _mean([s[m] for s in per_image.values() if m in s]) for m in metrics}
    return {"mean": mean, "per_image": per_image}


def write_metric_files(results: Dict[str, Any], results_root: Path) -> None:
    """``metrics.json`` and ``metrics.csv`` (dataset, image, one column per metric)."""
    results_root.mkdir(parents=True, exist_ok=True)
    (results_root / "metrics.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    names = sorted({m for r in results.values() for m in r["mean"]})
    with open(results_root / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dataset", "image", *names])
        for ds_name, result in results.items():
            for image, scores in result["per_image"].items():
                writer.writerow([ds_name, image, *[scores.get(m, "") for m in names]])
            writer.writerow([ds_name, "MEAN", *[result["mean"].get(m, "") for m in names]])


def run_test(opt: Dict[str, Any], runtime: Runtime) -> Dict[str, Any]:
    """Evaluate every ``datasets.test*`` entry; returns the metrics.json content."""
    log = get_logger()
    keys = dataset_keys(opt, "test")
    if not keys:
        raise ValueError(f"{opt.get('opt_path')}: no datasets.test* entry to evaluate")
    model = build_model(opt, runtime)
    results_root = Path(opt["path"]["results_root"])
    val_opt = opt.get("val") or {}
    save_img = bool(val_opt.get("save_img", False))
    results: Dict[str, Any] = {}
    for key in keys:
        ds_opt = opt["datasets"][key]
        dataset = build_dataset(ds_opt, f"datasets.{key}")
        name = ds_opt["name"]
        vis_dir = Path(opt["path"]["visualization"]) / name if save_img else None
        cmp_dir = results_root / "comparison" / name if val_opt.get("save_comparison") else None
        log.info("testing %s (%d images) on %s, %s", name, len(dataset), runtime.device_name(),
                 runtime.precision)
        with torch.inference_mode():
            results[name] = evaluate_dataset(model, dataset, name, val_opt, vis_dir, cmp_dir)
        log.info("%s mean: %s", name,
                 " ".join(f"{k}: {v:.4f}" for k, v in results[name]["mean"].items()))
    write_metric_files(results, results_root)
    log.info("metrics written to %s", results_root / "metrics.json")
    return results
