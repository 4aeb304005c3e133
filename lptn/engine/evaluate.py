"""The test runner: every ``datasets.test*`` entry through the generator, metrics, images.

Writes ``{results_root}/metrics.json`` as
``{dataset_name: {"mean": {metric: value}, "per_image": {file_name: {metric: value}}}}``,
``metrics.csv`` (one row per image), ``report.html`` (:mod:`lptn.engine.report`) and, with
``val.save_img``, the outputs as full-resolution PNG files named like the inputs in
``visualization/{dataset_name}/``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from lptn.data import build_dataset
from lptn.data.image_io import tensor_to_image, write_image
from lptn.engine.report import TestReport, report_details
from lptn.metrics import calculate_metric
from lptn.models import build_model
from lptn.platform.logger import get_logger
from lptn.platform.options import dataset_keys
from lptn.platform.runtime import Runtime


def mean_metric(values: List[float]) -> float:
    """Mean of per-image values (nan for none); inf (identical images) stays visible as inf."""
    return float(np.mean(values)) if values else math.nan


def output_name(path: str, suffix: str | None) -> str:
    """File name of a saved output: the input's stem (+ ``_suffix``) as PNG."""
    stem = Path(path).stem
    return f"{stem}_{suffix}.png" if suffix else f"{stem}.png"


@dataclass
class ImageResult:
    """One enhanced image: HxWx3 uint8 output (and target), its metric values."""

    name: str
    output: np.ndarray
    target: Optional[np.ndarray]
    scores: Dict[str, float]

    def comparison_panel(self, lq: torch.Tensor) -> np.ndarray:
        """input | output | target side by side, (H, 3W, 3) uint8 (no target: two panels)."""
        parts = [tensor_to_image(lq), self.output]
        if self.target is not None:
            parts.append(self.target)
        return np.concatenate(parts, axis=1)


def enhance_and_measure(model: Any, data: Dict[str, Any], metrics: Dict[str, Any]) -> ImageResult:
    """Enhance one loader item (batch 1) with ``model.enhance`` and apply ``metrics``.

    Outputs are quantised with ``round(clip(x, 0, 1) * 255)`` before measuring, as the FiveK
    numbers are computed; ``test.py`` and validation during training both use this function,
    so their numbers agree by construction.
    """
    out_img = tensor_to_image(model.enhance(data["lq"])[0].cpu())
    gt_img = tensor_to_image(data["gt"][0]) if "gt" in data else None
    scores: Dict[str, float] = {}
    if gt_img is not None:
        for metric_name, metric_opt in metrics.items():
            scores[metric_name] = calculate_metric(
                {"img": out_img, "img2": gt_img}, metric_opt, f"val.metrics.{metric_name}"
            )
    return ImageResult(Path(data["lq_path"][0]).stem, out_img, gt_img, scores)


def evaluate_dataset(
    model: Any,
    dataset: Any,
    dataset_name: str,
    val_opt: Dict[str, Any],
    visualization_dir: Path | None = None,
    comparison_dir: Path | None = None,
    on_image: Optional[Callable[[ImageResult, Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Run one dataset; return ``{"mean": {...}, "per_image": {...}}``.

    Outputs go to ``visualization_dir`` and input|output|target panels to ``comparison_dir``
    when they are given; ``on_image(result, loader_item)`` sees every image (the report).
    """
    metrics = val_opt.get("metrics") or {}
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0)
    per_image: Dict[str, Dict[str, float]] = {}
    log = get_logger()
    with logging_redirect_tqdm(loggers=[log]):
        for data in tqdm(loader, desc=dataset_name, unit="img", leave=False):
            result = enhance_and_measure(model, data, metrics)
            per_image[result.name] = result.scores
            if on_image is not None:
                on_image(result, data)
            if visualization_dir is not None:
                write_image(
                    visualization_dir / output_name(data["lq_path"][0], val_opt.get("suffix")),
                    result.output,
                )
            if comparison_dir is not None:
                write_image(
                    comparison_dir / f"{result.name}.png", result.comparison_panel(data["lq"][0])
                )
            log.info(
                "%s %s %s",
                dataset_name,
                result.name,
                " ".join(f"{k}: {v:.4f}" for k, v in result.scores.items()),
            )
    mean = {m: mean_metric([s[m] for s in per_image.values() if m in s]) for m in metrics}
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
    report = TestReport(results_root, opt["name"], report_details(opt, runtime))
    for key in keys:
        ds_opt = opt["datasets"][key]
        dataset = build_dataset(ds_opt, f"datasets.{key}")
        name = ds_opt["name"]
        vis_dir = Path(opt["path"]["visualization"]) / name if save_img else None
        cmp_dir = results_root / "comparison" / name if val_opt.get("save_comparison") else None
        log.info(
            "testing %s (%d images) on %s, %s",
            name,
            len(dataset),
            runtime.device_name(),
            runtime.precision,
        )
        with torch.inference_mode():
            on_image = report.collector(
                name, vis_dir, lambda p: output_name(p, val_opt.get("suffix"))
            )
            results[name] = evaluate_dataset(
                model, dataset, name, val_opt, vis_dir, cmp_dir, on_image
            )
        log.info(
            "%s mean: %s", name, " ".join(f"{k}: {v:.4f}" for k, v in results[name]["mean"].items())
        )
    write_metric_files(results, results_root)
    log.info("metrics written to %s", results_root / "metrics.json")
    log.info("report: %s", report.write(results, val_opt.get("metrics") or {}))
    return results
