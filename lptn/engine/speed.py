"""The speed runner: median / p90 latency, throughput and peak memory of the generator.

Timed inputs hold real pixel values: images of the test dataset (or, without one, a photo
that scikit-image ships) resized to each requested size, or at their own sizes when
``val.fix_img_size`` is ``~``.

``{results_root}/speed.json`` holds the conditions (device, precision, path, threads), one
entry per timed image and size under ``images``, under ``sizes`` one summary per size over
all the images timed at that size (with the peak memory of that size), and under ``failed``
the images that could not be read (``{file name: reason}``; they are left out, the others
are timed).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Sized, Tuple, cast

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lptn.data import build_dataset
from lptn.data.image_io import image_to_tensor
from lptn.engine.evaluate import IMAGE_ERRORS, input_file_name
from lptn.models import build_model
from lptn.models.model_protocol import EnhancementModel
from lptn.platform.atomic_file import write_text_atomic
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


def _source_images(
    opt: Dict[str, Any], count: int, failed: Dict[str, str]
) -> List[Tuple[str, np.ndarray]]:
    """``(file name, float32 HxWx3 image in [0, 1])`` of the first ``count`` items of the
    first test dataset (else the first val dataset, else scikit-image's astronaut photo).

    Items that cannot be read are logged and left out, with the reason, in ``failed``.

    Raises:
        ValueError: the dataset has items but none of them could be read.
    """
    keys = dataset_keys(opt, "test") or dataset_keys(opt, "val")
    images: List[Tuple[str, np.ndarray]] = []
    if keys:
        key = keys[0]
        dataset = build_dataset(opt["datasets"][key], f"datasets.{key}")
        for i in range(min(count, len(cast(Sized, dataset)))):
            try:
                item = dataset[i]
            except IMAGE_ERRORS as err:
                name = input_file_name(dataset, i)
                failed[name] = str(err)
                get_logger().error("%s: not timed: %s", name, err)
                continue
            images.append((Path(item["lq_path"]).name, item["lq"].permute(1, 2, 0).numpy()))
        if failed and not images:
            raise ValueError(f"datasets.{key}: none of the first {count} images could be read")
    if not images:
        from skimage import data as skdata  # a real photo shipped with scikit-image

        images.append(("astronaut", skdata.astronaut().astype(np.float32) / 255.0))
        get_logger().info("no test dataset: timing on scikit-image's astronaut photo")
    return images


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_images(
    model: EnhancementModel,
    runtime: Runtime,
    inputs: Sequence[torch.Tensor],
    times_per_img: int,
    warmup: int,
) -> List[List[float]]:
    """Time ``model.enhance`` on each input ``times_per_img`` times after ``warmup`` runs on
    the first; returns the latencies in ms, one list per input. The device's peak-memory
    counter is reset after the warm-up."""
    inputs = [x.to(runtime.device) for x in inputs]
    for _ in range(warmup):
        model.enhance(inputs[0])
    runtime.synchronize()
    runtime.reset_peak_memory()
    times_ms: List[List[float]] = []
    for x in inputs:
        runs: List[float] = []
        for _ in range(times_per_img):
            runtime.synchronize()
            start = time.perf_counter()
            model.enhance(x)
            runtime.synchronize()
            runs.append((time.perf_counter() - start) * 1e3)
        times_ms.append(runs)
    return times_ms


def latency_stats(times_ms: Sequence[float], height: int, width: int) -> Dict[str, float]:
    """Median / p90 / mean latency (ms) of ``times_ms`` and the throughput they give at
    ``height`` x ``width`` pixels (images/s and megapixels/s, from the median)."""
    median = _percentile(times_ms, 50)
    return {
        "median_ms": median,
        "p90_ms": _percentile(times_ms, 90),
        "mean_ms": float(np.mean(times_ms)),
        "runs": len(times_ms),
        "images_per_s": 1e3 / median,
        "megapixels_per_s": height * width / 1e6 * 1e3 / median,
    }


def _size_groups(
    images: List[Tuple[str, np.ndarray]], sizes: List[Tuple[int, int]] | None
) -> Dict[Tuple[int, int], List[Tuple[str, np.ndarray]]]:
    """The images to time at each (H, W): every image resized to each requested size, or,
    without sizes, the images grouped by their own size (in order of first appearance)."""
    groups: Dict[Tuple[int, int], List[Tuple[str, np.ndarray]]] = {}
    if sizes is None:
        for name, img in images:
            groups.setdefault((img.shape[0], img.shape[1]), []).append((name, img))
        return groups
    for h, w in sizes:
        groups[(h, w)] = [
            (name, cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)) for name, img in images
        ]
    return groups


def run_speed_test(opt: Dict[str, Any], runtime: Runtime) -> Dict[str, Any]:
    """Time the generator at every size in ``val.fix_img_size`` (``~``: each image at its own
    size); writes ``speed.json`` (see the module docstring) and returns its content."""
    log = get_logger()
    val_opt = opt["val"]  # checked and defaulted by the schema
    num_img: int = val_opt["num_img"]
    times: int = val_opt["times_per_img"]
    warmup: int = val_opt["warmup"]
    sizes = parse_sizes(val_opt["fix_img_size"])
    model: EnhancementModel = build_model(opt, runtime)
    failed: Dict[str, str] = {}
    images = _source_images(opt, num_img, failed)
    report: Dict[str, Any] = {
        "device": runtime.device_name(),
        "precision": runtime.precision,
        "tf32": runtime.tf32,
        "path": getattr(model, "inference_path", "exact"),
        "threads": torch.get_num_threads(),
        "sizes": {},
        "images": [],
        "failed": failed,
    }
    groups = _size_groups(images, sizes)
    for (h, w), group in tqdm(groups.items(), desc="speed", unit="size", leave=False):
        tensors = [image_to_tensor(img).unsqueeze(0) for _, img in group]
        with torch.inference_mode():
            per_image = time_images(model, runtime, tensors, times, warmup)
        size = f"{h}x{w}"
        for (name, _), runs in zip(group, per_image):
            report["images"].append({"image": name, "size": size, **latency_stats(runs, h, w)})
        stats: Dict[str, Any] = latency_stats([t for runs in per_image for t in runs], h, w)
        stats["images"] = len(group)
        stats["peak_mem_mb"] = runtime.peak_memory_mb()
        report["sizes"][size] = stats
        log.info(
            "%dx%d (%d image(s)): median %.2f ms, p90 %.2f ms, %.1f img/s, %.1f MP/s, "
            "peak %.0f MB (%s, %s)",
            h,
            w,
            len(group),
            stats["median_ms"],
            stats["p90_ms"],
            stats["images_per_s"],
            stats["megapixels_per_s"],
            stats["peak_mem_mb"],
            report["device"],
            runtime.precision,
        )
    out = Path(opt["path"]["results_root"]) / "speed.json"
    write_text_atomic(out, json.dumps(report, indent=2))
    log.info("speed report written to %s", out)
    return report
