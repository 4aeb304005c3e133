"""The test runner: every ``datasets.test*`` entry through the generator, metrics, images.

Writes ``{results_root}/metrics.json`` as ``{dataset_name: {"mean": {metric: value},
"per_image": {image_name: {metric: value}}, "failed": {file_name: reason}}}``, ``metrics.csv``
(one row per image with its status, ``ok`` or ``failed``, and one per mean), ``report.html``
(:mod:`lptn.engine.report`) and, with ``val.save_img``, the outputs as full-resolution PNG
files named like the inputs in ``visualization/{dataset_name}/``.

One bad image does not lose the evaluation: an image that cannot be read or enhanced is logged
and listed under ``failed``, the means cover the images measured, and the files are rewritten
after each dataset so that the finished datasets survive a later crash.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sized, cast

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from lptn.data import build_dataset
from lptn.data.image_io import tensor_to_image, write_image
from lptn.engine.report import TestReport, report_details
from lptn.metrics import calculate_metric
from lptn.models import build_model
from lptn.models.model_protocol import EnhancementModel
from lptn.platform.atomic_file import write_text_atomic
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


def measure_output(
    output: torch.Tensor, data: Dict[str, Any], metrics: Dict[str, Any]
) -> ImageResult:
    """Quantise one enhanced loader item (``output`` (1, 3, H, W) float) and apply
    ``metrics`` against ``data['gt']`` when there is one.

    Outputs are quantised with ``round(clip(x, 0, 1) * 255)`` before measuring, as the FiveK
    numbers are computed.
    """
    out_img = tensor_to_image(output[0].cpu())
    gt_img = tensor_to_image(data["gt"][0]) if "gt" in data else None
    scores: Dict[str, float] = {}
    if gt_img is not None:
        for metric_name, metric_opt in metrics.items():
            scores[metric_name] = calculate_metric(
                {"img": out_img, "img2": gt_img}, metric_opt, f"val.metrics.{metric_name}"
            )
    return ImageResult(Path(data["lq_path"][0]).stem, out_img, gt_img, scores)


def enhance_and_measure(
    model: EnhancementModel, data: Dict[str, Any], metrics: Dict[str, Any]
) -> ImageResult:
    """Enhance one loader item (batch 1) with ``model.enhance`` and apply ``metrics``.

    ``test.py`` and validation during training both measure through :func:`measure_output`,
    so their numbers agree by construction.
    """
    return measure_output(model.enhance(data["lq"]), data, metrics)


# What one image can raise without the others being affected: unreadable or undecodable files
# (ImageReadError is an OSError), pairs of different sizes or images too small for the
# pyramid (ValueError), an image too large for the device's memory.
IMAGE_ERRORS = (OSError, ValueError, torch.cuda.OutOfMemoryError)


def input_file_name(dataset: Dataset, index: int) -> str:
    """File name of item ``index``'s input, for the report of an item that failed."""
    input_path = getattr(dataset, "input_path", None)
    if input_path is None:
        return f"item {index}"
    try:
        return Path(input_path(index)).name
    except NotImplementedError:
        return f"item {index}"


def evaluate_dataset(
    model: EnhancementModel,
    dataset: Dataset,
    dataset_name: str,
    val_opt: Dict[str, Any],
    visualization_dir: Path | None = None,
    comparison_dir: Path | None = None,
    on_image: Optional[Callable[[ImageResult, Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Run one dataset; return ``{"mean": {...}, "per_image": {...}, "failed": {...}}``.

    An image that cannot be loaded or enhanced (:data:`IMAGE_ERRORS`) is logged and reported
    under ``failed`` as ``{file_name: reason}``; the others are measured as usual. Outputs go
    to ``visualization_dir`` and input|output|target panels to ``comparison_dir`` when they
    are given; ``on_image(result, loader_item)`` sees every measured image (the report).
    """
    metrics = val_opt.get("metrics") or {}
    per_image: Dict[str, Dict[str, float]] = {}
    failed: Dict[str, str] = {}
    log = get_logger()
    with logging_redirect_tqdm(loggers=[log]):
        # Items are read one by one (not through a DataLoader) so that a failing read is
        # caught for that item alone.
        for index in tqdm(
            range(len(cast(Sized, dataset))), desc=dataset_name, unit="img", leave=False
        ):
            try:
                data = default_collate([dataset[index]])
                output = model.enhance(data["lq"])
            except IMAGE_ERRORS as err:
                name = input_file_name(dataset, index)
                failed[name] = str(err)
                log.error("%s %s: not evaluated: %s", dataset_name, name, err)
                continue
            result = measure_output(output, data, metrics)
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
    return {"mean": mean, "per_image": per_image, "failed": failed}


def write_metric_files(results: Dict[str, Any], results_root: Path) -> None:
    """``metrics.json`` and ``metrics.csv``, each written atomically.

    ``metrics.csv`` has the columns ``dataset, image, status, <metric>..., reason``: per
    dataset one ``ok`` row per measured image, one ``failed`` row per image that could not be
    evaluated (empty metrics, the reason given), then the ``MEAN`` row (status ``mean``, over
    the measured images), so the table lists every image that ``metrics.json`` does.
    """
    write_text_atomic(results_root / "metrics.json", json.dumps(results, indent=2))
    names = sorted({m for r in results.values() for m in r["mean"]})
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["dataset", "image", "status", *names, "reason"])
    for ds_name, result in results.items():
        for image, scores in result["per_image"].items():
            writer.writerow([ds_name, image, "ok", *[scores.get(m, "") for m in names], ""])
        for image, reason in (result.get("failed") or {}).items():
            writer.writerow([ds_name, image, "failed", *[""] * len(names), reason])
        mean = result["mean"]
        writer.writerow([ds_name, "MEAN", "mean", *[mean.get(m, "") for m in names], ""])
    write_text_atomic(results_root / "metrics.csv", table.getvalue())


def failed_images(results: Dict[str, Any]) -> int:
    """How many images of a :func:`run_test` result could not be evaluated."""
    return sum(len(r.get("failed") or {}) for r in results.values())


def run_test(opt: Dict[str, Any], runtime: Runtime) -> Dict[str, Any]:
    """Evaluate every ``datasets.test*`` entry; returns the metrics.json content.

    Every output goes under ``path.results_root`` unless ``path.visualization`` / ``path.log``
    say otherwise (see :mod:`lptn.platform.options`).
    """
    log = get_logger()
    keys = dataset_keys(opt, "test")
    if not keys:
        raise ValueError(f"{opt.get('opt_path')}: no datasets.test* entry to evaluate")
    model: EnhancementModel = build_model(opt, runtime)
    results_root = Path(opt["path"]["results_root"])
    val_opt = opt["val"]  # checked and defaulted by the schema
    save_img: bool = val_opt["save_img"]
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
            len(cast(Sized, dataset)),
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
        if results[name]["failed"]:
            log.error(
                "%s: %d image(s) not evaluated: %s",
                name,
                len(results[name]["failed"]),
                ", ".join(results[name]["failed"]),
            )
        # After every dataset: what is finished is kept if a later one crashes.
        write_metric_files(results, results_root)
    log.info("metrics written to %s", results_root / "metrics.json")
    log.info("report: %s", report.write(results, val_opt.get("metrics") or {}))
    return results
