"""Enhance photos of any size: files, folders or glob patterns in, same names out.

The output keeps the file name, format and bit depth (8 or 16 bit) of each input. Inputs are
never overwritten. A file that cannot be read or written is reported and skipped; the run goes
on and ends with a summary (and a non-zero exit status from the command line).
"""

from __future__ import annotations

import contextlib
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lptn.data.image_io import (
    ImageReadError,
    image_to_tensor,
    is_image_file,
    read_image,
    tensor_to_image,
    to_float,
    write_image,
)
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.graph_lptn import GraphLPTN
from lptn.inference.settings import InferencePath, InferenceSettings, build_inference_path
from lptn.inference.tiling import default_memory_budget_mb
from lptn.platform.logger import get_logger
from lptn.platform.runtime import Runtime
from lptn.video import is_video_file


@dataclass
class EnhanceSummary:
    written: List[Path] = field(default_factory=list)
    failed: List[Tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _is_input_file(path: Path | str) -> bool:
    return is_image_file(path) or is_video_file(path)


def collect_inputs(spec: str) -> List[Path]:
    """A file, a folder (its image and video files, sorted) or a glob pattern -> list of
    files; videos (:func:`lptn.video.is_video_file`) go to :mod:`lptn.engine.enhance_video`."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _is_input_file(p))
    elif path.is_file():
        files = [path]
    else:
        files = sorted(
            Path(p)
            for p in glob.glob(spec, recursive=True)
            if Path(p).is_file() and _is_input_file(p)
        )
    if not files:
        raise FileNotFoundError(f"--input {spec}: no image files found (nor video files)")
    return files


def enhance_array(
    net: nn.Module, img: np.ndarray, runtime: Runtime, fast: Optional[InferencePath] = None
) -> np.ndarray:
    """HxWx3 uint8/uint16 RGB -> enhanced image of the same dtype.

    With ``fast`` a :class:`FastLPTN` (the fast path), the image is processed region by region
    from the integer array within its memory budget; with a :class:`GraphLPTN`, or with
    ``net`` alone (the exact path), on the whole image.
    """
    if isinstance(fast, FastLPTN):
        with torch.inference_mode():
            return fast.enhance_array(img, runtime.device)
    x = image_to_tensor(to_float(img)).unsqueeze(0).to(runtime.device)
    # GraphLPTN lowers the precision of its conv stacks itself; the pyramid stays float32.
    precision = contextlib.nullcontext() if fast is not None else runtime.autocast()
    with torch.inference_mode(), precision:
        out = (fast or net)(x)
    return tensor_to_image(out.float()[0].cpu(), dtype=img.dtype)


def enhance_files(
    net: nn.Module,
    inputs: Sequence[Path],
    output_dir: Path,
    runtime: Runtime,
    jpeg_quality: int = 95,
    show_progress: bool = True,
    inference: Optional[InferenceSettings] = None,
) -> EnhanceSummary:
    """Enhance each input into ``output_dir`` (same file name); never overwrites an input.

    ``inference`` picks the fast (default), graph or exact path, tile size and memory budget.
    """
    log = get_logger()
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = EnhanceSummary()
    input_set = {p.resolve() for p in inputs}
    seen: Dict[str, Path] = {}
    net = net.to(runtime.device).eval()
    fast = build_inference_path(net, inference or InferenceSettings(), runtime.precision)
    for src in tqdm(inputs, desc="enhance", unit="img", disable=not show_progress):
        dst = output_dir / src.name
        if dst.resolve() in input_set:
            summary.failed.append(
                (src, f"output {dst} would overwrite an input; choose another --output folder")
            )
            continue
        if src.name in seen:
            summary.failed.append((src, f"same file name as {seen[src.name]}; output skipped"))
            continue
        seen[src.name] = src
        try:
            img = read_image(src)
            if isinstance(fast, FastLPTN):
                plan = fast.plan(1, img.shape[0], img.shape[1], runtime.device)
                if plan.tiled:
                    log.info(
                        "%s (%dx%d): tiled to fit the memory budget: %s",
                        src.name,
                        img.shape[0],
                        img.shape[1],
                        plan.describe(),
                    )
            elif isinstance(fast, GraphLPTN):
                need = fast.working_memory_mb(img.shape[0], img.shape[1])
                budget = default_memory_budget_mb(runtime.device)
                if need > budget:
                    log.warning(
                        "%s (%dx%d): the graph path needs about %.0f MB for the whole "
                        "image (default budget %.0f MB); --path fast tiles within a "
                        "budget",
                        src.name,
                        img.shape[0],
                        img.shape[1],
                        need,
                        budget,
                    )
            out = enhance_array(net, img, runtime, fast)
            del img  # the input's memory is free again before encoding the output
            write_image(dst, out, jpeg_quality=jpeg_quality)
            del out
        except (ImageReadError, OSError, ValueError, RuntimeError) as err:
            summary.failed.append((src, str(err)))
            log.error("skipped %s: %s", src, err)
            continue
        summary.written.append(dst)
    log.info("enhanced %d of %d images into %s", len(summary.written), len(inputs), output_dir)
    for src, reason in summary.failed:
        log.error("FAILED %s: %s", src, reason)
    return summary
