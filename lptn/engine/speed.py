"""The speed runner: median / p90 latency, throughput and peak memory of the generator.

Timed inputs hold real pixel values: images of the test dataset (or, without one, a photo
that scikit-image ships) resized to each requested size.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lptn.data import build_dataset
from lptn.data.image_io import image_to_tensor
from lptn.models import build_model
from lptn.platform.logger import get_logger
from lptn.platform.options import OptionError, dataset_keys
from lptn.platform.runtime import Runtime


def parse_sizes(value: Any, key_path: str = "val.fix_img_size") -> List[Tuple[int, int]] | None:
    """``[H, W]``, a list of ``[H, W]`` or None -> list of (H, W) or None (original sizes)."""
    if value is None:
        return None
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        value = [value]
    sizes = []
    for item in value:
        if not (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and all(isinstance(v, int) and v > 0 for v in item)
        ):
            raise OptionError(f"{key_path}: expected [H, W] or a list of [H, W], got {value!r}")
        sizes.append((int(item[0]), int(item[1])))
    return sizes


def _source_images(opt: Dict[str, Any], count: int) -> List[np.ndarray]:
    """Up to ``count`` float32 HxWx3 images in [0, 1] from the first test dataset."""
    keys = dataset_keys(opt, "test") or dataset_keys(opt, "val")
    images: List[np.ndarray] = []
    if keys:
        key = keys[0]
        dataset = build_dataset(opt["datasets"][key], f"datasets.{key}")
        for i in range(min(count, len(dataset))):
            images.append(dataset[i]["lq"].permute(1, 2, 0).numpy())
    if not images:
        from skimage import data as skdata  # a real photo shipped with scikit-image

        images.append(skdata.astronaut().astype(np.float32) / 255.0)
        get_logger().info("no test dataset: timing on scikit-image's astronaut photo")
    return images


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_forward(
    model: Any, runtime: Runtime, inputs: Sequence[torch.Tensor], times_per_img: int, warmup: int
) -> Dict[str, float]:
    """Time ``model.enhance`` on each input ``times_per_img`` times after ``warmup`` runs."""
    inputs = [x.to(runtime.device) for x in inputs]
    for _ in range(warmup):
        model.enhance(inputs[0])
    runtime.synchronize()
    runtime.reset_peak_memory()
    times_ms: List[float] = []
    for x in inputs:
        for _ in range(times_per_img):
            runtime.synchronize()
            start = time.perf_counter()
            model.enhance(x)
            runtime.synchronize()
            times_ms.append((time.perf_counter() - start) * 1e3)
    median = _percentile(times_ms, 50)
    h, w = inputs[0].shape[-2:]
    return {
        "median_ms": median,
        "p90_ms": _percentile(times_ms, 90),
        "mean_ms": float(np.mean(times_ms)),
        "runs": len(times_ms),
        "images_per_s": 1e3 / median,
        "megapixels_per_s": h * w / 1e6 * 1e3 / median,
        "peak_mem_mb": runtime.peak_memory_mb(),
    }


def run_speed_test(opt: Dict[str, Any], runtime: Runtime) -> Dict[str, Any]:
    """Time the generator at every size in ``val.fix_img_size``; writes ``speed.json``."""
    log = get_logger()
    val_opt = opt.get("val") or {}
    num_img = int(val_opt.get("num_img", 1))
    times = int(val_opt.get("times_per_img", 10))
    warmup = int(val_opt.get("warmup", 3))
    sizes = parse_sizes(val_opt.get("fix_img_size"))
    model = build_model(opt, runtime)
    images = _source_images(opt, num_img)
    report: Dict[str, Any] = {
        "device": runtime.device_name(),
        "precision": runtime.precision,
        "tf32": runtime.tf32,
        "path": getattr(model, "inference_path", "exact"),
        "threads": torch.get_num_threads(),
        "sizes": {},
    }
    groups: List[Tuple[Tuple[int, int], List[np.ndarray]]]
    if sizes is None:
        groups = [((img.shape[0], img.shape[1]), [img]) for img in images]
    else:
        groups = [
            (
                size,
                [
                    cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                    for img in images
                ],
            )
            for size in sizes
        ]
    for (h, w), group in tqdm(groups, desc="speed", unit="size", leave=False):
        tensors = [image_to_tensor(img).unsqueeze(0) for img in group]
        with torch.inference_mode():
            stats = time_forward(model, runtime, tensors, times, warmup)
        report["sizes"][f"{h}x{w}"] = stats
        log.info(
            "%dx%d: median %.2f ms, p90 %.2f ms, %.1f img/s, %.1f MP/s, peak %.0f MB (%s, %s)",
            h,
            w,
            stats["median_ms"],
            stats["p90_ms"],
            stats["images_per_s"],
            stats["megapixels_per_s"],
            stats["peak_mem_mb"],
            report["device"],
            runtime.precision,
        )
    out = Path(opt["path"]["results_root"]) / "speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    log.info("speed report written to %s", out)
    return report
