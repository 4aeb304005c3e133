"""``lptn-compare``: several generators and the identity on the same test sets, one table.

Every weights file (any registered architecture; :func:`~lptn.inference.generator_weights.
load_generator` reads which) and the identity (the input itself) run through the
``datasets.test*`` blocks of one option file, the blocks ``test.py`` reads, and are measured by
the same code (:func:`lptn.engine.evaluate.evaluate_dataset`) with the FiveK papers' protocol
(:data:`COMPARE_METRICS`). Each is also timed on this device at 480p and 4K. The table is
written as ``compare.md``, ``compare.csv`` and ``compare.html``; the page shows each image's
input, every model's output and the target side by side, linked to the full-size files.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Sized, Tuple, cast

import numpy as np
import torch
from torch import nn

from lptn.data import build_dataset
from lptn.data.image_io import tensor_to_image, write_image
from lptn.engine.evaluate import ImageResult, evaluate_dataset
from lptn.engine.report import THUMBNAIL_QUALITY, thumbnail
from lptn.engine.speed import time_images
from lptn.inference.settings import InferenceSettings, build_inference_path
from lptn.platform.atomic_file import write_text_atomic
from lptn.platform.logger import get_logger
from lptn.platform.options import dataset_keys
from lptn.platform.runtime import Runtime

#: the table's metrics, as ``val.metrics`` blocks: PSNR and SSIM as test.py measures FiveK,
#: the LUT papers' SSIM (ssim.m) and their mean CIE76 Delta E, and CIEDE2000
COMPARE_METRICS: Dict[str, Dict[str, Any]] = {
    "psnr": {"type": "calculate_psnr", "crop_border": 0, "test_y_channel": False},
    "ssim": {"type": "calculate_ssim", "crop_border": 0, "test_y_channel": False},
    "ssim_lut": {"type": "calculate_ssim_lut"},
    "deltae": {"type": "calculate_deltae", "formula": "cie76"},
    "deltae2000": {"type": "calculate_deltae", "formula": "ciede2000"},
}
METRIC_TITLES = {
    "psnr": "PSNR dB ↑",
    "ssim": "SSIM ↑",
    "ssim_lut": "SSIM (LUT protocol) ↑",
    "deltae": "ΔE76 ↓",
    "deltae2000": "ΔE2000 ↓",
}
#: the timed sizes, (name, height, width): FiveK's 480p (3:2) and UHD 4K
SPEED_SIZES: Tuple[Tuple[str, int, int], ...] = (("480p", 480, 720), ("4K", 2160, 3840))
IDENTITY = "identity"
FILES_DIR = "compare_files"


class GeneratorRunner:
    """A generator as :func:`evaluate_dataset` and :func:`time_images` call it: ``enhance``
    takes (N, 3, H, W) float in [0, 1] and returns the float32 output on the runtime's device,
    through the path the photo tools use (LPTN's fast path by default, others exact)."""

    def __init__(
        self, net: nn.Module, runtime: Runtime, inference: Optional[InferenceSettings] = None
    ) -> None:
        self.runtime = runtime
        self.net = net.to(runtime.device).eval()
        identity = isinstance(net, nn.Identity)
        settings = inference or InferenceSettings()
        self.path = None if identity else build_inference_path(net, settings, runtime.precision)

    @torch.no_grad()
    def enhance(self, lq: torch.Tensor) -> torch.Tensor:
        lq = lq.to(self.runtime.device)
        if self.path is not None:  # applies the precision to its conv stacks itself
            return self.path(lq).float()
        with self.runtime.autocast():
            return self.net(lq).float()


@dataclass
class Candidate:
    """One column of the comparison: a name, its generator and where it came from."""

    name: str
    net: nn.Module
    weights: Optional[Path] = None
    arch: str = IDENTITY

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())


def load_candidates(
    weights: Sequence[str | Path],
    names: Optional[Sequence[str]] = None,
    param_key: Optional[str] = None,
) -> List[Candidate]:
    """The identity, then one :class:`Candidate` per weights file (named by ``names``, else
    by the file's stem); raises :class:`~lptn.platform.checkpoint_io.CheckpointError` naming
    a file that does not load, ``ValueError`` for names that do not fit."""
    from lptn.inference.generator_weights import generator_options, load_generator

    if names and len(names) != len(weights):
        raise ValueError(f"--names: {len(names)} names for {len(weights)} weights files")
    labels = list(names) if names else [Path(w).stem for w in weights]
    taken = [IDENTITY, *labels]
    duplicates = sorted({n for n in taken if taken.count(n) > 1})
    if duplicates:
        raise ValueError(f"--names: each model needs its own name; repeated: {duplicates}")
    candidates = [Candidate(IDENTITY, nn.Identity())]
    for label, path in zip(labels, weights):
        opt = generator_options(path, param_key)
        net = load_generator(path, opt, param_key)
        arch = ", ".join([opt["type"], *(f"{k} {v}" for k, v in opt.items() if k != "type")])
        candidates.append(Candidate(label, net, Path(path), arch))
    return candidates


def time_candidate(runner: GeneratorRunner, runtime: Runtime, runs: int) -> Dict[str, float]:
    """Median ms per image at each of :data:`SPEED_SIZES` over ``runs`` runs after one warm-up
    (random images: the time does not depend on the content)."""
    gen = torch.Generator().manual_seed(0)
    times: Dict[str, float] = {}
    for size_name, height, width in SPEED_SIZES:
        x = torch.rand(1, 3, height, width, generator=gen)
        with torch.inference_mode():
            ms = time_images(runner, runtime, [x], times_per_img=runs, warmup=1)[0]
        times[size_name] = float(np.median(ms))
    return times


@dataclass
class _Panel:
    thumb: str  # relative to the report
    width: int
    height: int
    full: Optional[Path]  # the full-size file


@dataclass
class CompareImages:
    """Thumbnails of every image of every test set, per panel (input, each model, target)."""

    root: Path
    panels: Dict[str, Dict[str, Dict[str, _Panel]]] = field(default_factory=dict)
    scores: Dict[str, Dict[str, Dict[str, Dict[str, float]]]] = field(default_factory=dict)

    def collector(self, dataset: str, candidate: str, output_dir: Path) -> Any:
        """The ``on_image`` callback of :func:`evaluate_dataset` for one model on one set."""
        folder = self.root / FILES_DIR / _safe(dataset)

        def record(result: ImageResult, data: Dict[str, Any]) -> None:
            panels = self.panels.setdefault(dataset, {}).setdefault(result.name, {})
            self.scores.setdefault(dataset, {}).setdefault(result.name, {})[candidate] = dict(
                result.scores
            )
            arrays: Dict[str, Tuple[Optional[np.ndarray], Optional[Path]]] = {
                candidate: (result.output, output_dir / f"{result.name}.png")
            }
            if "input" not in panels:
                arrays["input"] = (tensor_to_image(data["lq"][0]), Path(data["lq_path"][0]))
                gt_path = Path(data["gt_path"][0]) if "gt_path" in data else None
                arrays["target"] = (result.target, gt_path)
            for panel, (img, full) in arrays.items():
                if img is None:
                    continue
                small = thumbnail(img)
                path = folder / f"{_safe(result.name)}_{_safe(panel)}.jpg"
                write_image(path, small, jpeg_quality=THUMBNAIL_QUALITY)
                rel = Path(os.path.relpath(path, self.root)).as_posix()
                panels[panel] = _Panel(rel, small.shape[1], small.shape[0], full)

        return record


def run_compare(
    opt: Dict[str, Any],
    candidates: Sequence[Candidate],
    runtime: Runtime,
    output: Path,
    speed_runs: int = 3,
) -> List[Dict[str, Any]]:
    """Evaluate ``candidates`` on every ``datasets.test*`` block of ``opt``, time them, write
    ``compare.md`` / ``.csv`` / ``.html`` under ``output``; returns the table's rows (one per
    test set and model: ``dataset, model, architecture, parameters, <metrics>, ms_480p,
    ms_4K, images, failed``). Full-size outputs go to ``output/images/{dataset}/{model}/``."""
    log = get_logger()
    keys = dataset_keys(opt, "test")
    if not keys:
        raise ValueError(f"{opt.get('opt_path')}: no datasets.test* entry to evaluate")
    if speed_runs < 1:
        raise ValueError(f"--speed-runs: expected at least 1, got {speed_runs}")
    output.mkdir(parents=True, exist_ok=True)
    images = CompareImages(output)
    val_opt = {"metrics": COMPARE_METRICS}
    runners = {c.name: GeneratorRunner(c.net, runtime) for c in candidates}
    speeds: Dict[str, Dict[str, float]] = {}
    for candidate in candidates:
        log.info("timing %s on %s", candidate.name, runtime.device_name())
        speeds[candidate.name] = time_candidate(runners[candidate.name], runtime, speed_runs)
    rows: List[Dict[str, Any]] = []
    for key in keys:
        ds_opt = opt["datasets"][key]
        dataset = build_dataset(ds_opt, f"datasets.{key}")
        name = ds_opt["name"]
        log.info(
            "comparing %d models on %s (%d images)",
            len(candidates),
            name,
            len(cast(Sized, dataset)),
        )
        for candidate in candidates:
            out_dir = output / "images" / _safe(name) / _safe(candidate.name)
            with torch.inference_mode():
                result = evaluate_dataset(
                    runners[candidate.name],
                    dataset,
                    f"{name} {candidate.name}",
                    val_opt,
                    visualization_dir=out_dir,
                    on_image=images.collector(name, candidate.name, out_dir),
                )
            rows.append(
                {
                    "dataset": name,
                    "model": candidate.name,
                    "architecture": candidate.arch,
                    "parameters": candidate.parameters,
                    **result["mean"],
                    **{f"ms_{s}": speeds[candidate.name][s] for s, _, _ in SPEED_SIZES},
                    "images": len(result["per_image"]),
                    "failed": len(result["failed"]),
                }
            )
    details = {
        "options": str(opt.get("opt_path", "")),
        "device": f"{runtime.device_name()}, {runtime.precision}",
        "timing": f"median of {speed_runs} run(s) after one warm-up, batch 1",
    }
    for candidate in candidates:
        details[candidate.name] = str(candidate.weights or "the input itself")
    write_text_atomic(output / "compare.md", markdown_table(rows))
    write_text_atomic(output / "compare.csv", csv_table(rows))
    write_text_atomic(output / "compare.html", html_page(rows, images, candidates, details))
    log.info("comparison written to %s", output / "compare.html")
    return rows


def _columns() -> List[Tuple[str, str]]:
    return [
        ("dataset", "test set"),
        ("model", "model"),
        ("architecture", "architecture"),
        ("parameters", "parameters"),
        *[(m, METRIC_TITLES[m]) for m in COMPARE_METRICS],
        *[(f"ms_{s}", f"ms / {s} image") for s, _, _ in SPEED_SIZES],
        ("images", "images"),
        ("failed", "failed"),
    ]


def _cell(key: str, value: Any) -> str:
    if isinstance(value, float):
        if key.startswith("ms_"):
            return f"{value:.1f}"
        return f"{value:.2f}" if key in ("psnr", "deltae", "deltae2000") else f"{value:.4f}"
    if key == "parameters":
        return f"{value:,}"
    return str(value)


def markdown_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as one GitHub-flavoured markdown table."""
    columns = _columns()
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|"
        + "|".join(
            "---:" if k not in ("dataset", "model", "architecture") else "---" for k, _ in columns
        )
        + "|",
    ]
    for row in rows:
        cells = [_cell(k, row.get(k, "")).replace("|", "\\|") for k, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows as CSV, full precision, the header being the row keys."""
    table = io.StringIO()
    writer = csv.writer(table)
    keys = [k for k, _ in _columns()]
    writer.writerow(keys)
    for row in rows:
        writer.writerow([row.get(k, "") for k in keys])
    return table.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.img img { display: block; border: 1px solid #ccc; }
td.img span { display: block; color: #555; font-size: 0.8em; }
.meta { color: #666; font-size: 0.9em; }
"""


def html_page(
    rows: Sequence[Dict[str, Any]],
    images: CompareImages,
    candidates: Sequence[Candidate],
    details: Dict[str, str],
) -> str:
    """A self-contained page (inline CSS, no script): the table, then per test set one row per
    image with input | every model's output | target thumbnails, each linked to its full-size
    file, and each output's PSNR and ΔE2000 under it."""
    e = _escape
    columns = _columns()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>lptn-compare</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>lptn-compare</h1>",
        '<p class="meta">' + "<br>".join(f"{e(k)}: {e(v)}" for k, v in details.items()) + "</p>",
        "<table><tr>" + "".join(f"<th>{e(t)}</th>" for _, t in columns) + "</tr>",
    ]
    for row in rows:
        parts.append(
            "<tr>"
            + "".join(
                f'<td class="{"num" if isinstance(row.get(k), (int, float)) else ""}">'
                f"{e(_cell(k, row.get(k, '')))}</td>"
                for k, _ in columns
            )
            + "</tr>"
        )
    parts.append("</table>")
    panels = ["input", *(c.name for c in candidates), "target"]
    for dataset, by_image in images.panels.items():
        parts.append(f"<h2>{e(dataset)}</h2><table><tr><th>image</th>")
        parts.append("".join(f"<th>{e(p)}</th>" for p in panels) + "</tr>")
        for image, cells in by_image.items():
            parts.append(f"<tr><td>{e(image)}</td>")
            scores = images.scores.get(dataset, {}).get(image, {})
            for panel in panels:
                parts.append(
                    _image_cell(images.root, image, panel, cells.get(panel), scores.get(panel))
                )
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _image_cell(
    root: Path, image: str, panel: str, entry: Optional[_Panel], scores: Optional[Dict[str, float]]
) -> str:
    e = _escape
    if entry is None:
        return '<td class="img"><span>none</span></td>'
    img = (
        f'<img src="{e(entry.thumb)}" width="{entry.width}" height="{entry.height}" '
        f'alt="{e(image)} {e(panel)}" loading="lazy">'
    )
    if entry.full is not None and entry.full.is_file():
        link = Path(os.path.relpath(entry.full.resolve(), root.resolve())).as_posix()
        img = f'<a href="{e(link)}">{img}</a>'
    note = ""
    if scores:
        note = (
            f"<span>{scores.get('psnr', float('nan')):.2f} dB, "
            f"ΔE2000 {scores.get('deltae2000', float('nan')):.2f}</span>"
        )
    return f'<td class="img">{img}{note}</td>'


def _escape(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def compare_main(argv: Optional[List[str]] = None) -> int:
    """``lptn-compare -opt TEST.yml --weights A.pth [B.pth ...] --output DIR``; exit 2 for bad
    arguments, options or weights, 1 when some image could not be evaluated."""
    from lptn.engine.cli import USER_ERRORS, _fail, _load
    from lptn.platform.checkpoint_io import PARAM_KEYS
    from lptn.platform.logger import drop_startup_records, keep_startup_records, setup_logger
    from lptn.platform.option_schema import DEVICES, PRECISION_NAMES
    from lptn.platform.runtime import build_runtime

    parser = argparse.ArgumentParser(
        description="Evaluate several generators (any architecture) and the identity on the "
        "datasets.test* blocks of one option file; one table as markdown, CSV and HTML."
    )
    parser.add_argument("-opt", "--opt", required=True, help="YAML option file (as test.py's)")
    parser.add_argument(
        "--weights", nargs="+", required=True, help="generator weights files (.pth)"
    )
    parser.add_argument("--names", nargs="+", help="one name per weights file (default: stems)")
    parser.add_argument("--output", required=True, help="folder for compare.md/.csv/.html")
    parser.add_argument("--param-key", choices=list(PARAM_KEYS), help="entry of the files")
    parser.add_argument("--device", choices=DEVICES, help="overrides the device option")
    parser.add_argument("--precision", choices=sorted(PRECISION_NAMES), help="default fp32")
    parser.add_argument(
        "--speed-runs", type=int, default=3, help="timed runs per size after a warm-up (3)"
    )
    args = parser.parse_args(argv)
    args.set = []
    setup_logger()
    keep_startup_records()
    try:
        opt = _load(args, is_train=False)
        runtime = build_runtime(opt, args.precision or opt["val"]["precision"])
        candidates = load_candidates(args.weights, args.names, args.param_key)
        rows = run_compare(opt, candidates, runtime, Path(args.output), args.speed_runs)
    except USER_ERRORS as err:
        return _fail(err)
    finally:
        drop_startup_records()
    print(markdown_table(rows), end="")
    failed = sum(r["failed"] for r in rows)
    if failed:
        print(f"error: {failed} image evaluation(s) failed; see the log", file=sys.stderr)
        return 1
    return 0


__all__ = ["COMPARE_METRICS", "compare_main", "load_candidates", "run_compare"]
