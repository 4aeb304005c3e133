"""The HTML report of a ``test.py`` run: ``{results_root}/report.html``.

One self-contained page that works offline (inline CSS, no script, no network): the mean
metrics of every test set, then one row per image, worst first (lowest PSNR, or the first
metric in its own direction when there is no PSNR), with input | output | target thumbnails
and that image's metrics. Each thumbnail links to the full-size file: the input and target
files of the dataset (when they are files on disk) and the saved output (``val.save_img``).
Thumbnails are small JPEG files in ``report_files/{dataset}/``, written while the images are
evaluated, so nothing is held in memory and no image is read twice.
"""

from __future__ import annotations

import datetime
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from lptn.data.image_io import tensor_to_image, write_image
from lptn.metrics import metric_direction
from lptn.platform.atomic_file import write_text_atomic

#: longest side of a thumbnail, in pixels
THUMBNAIL_SIZE = 160
THUMBNAIL_QUALITY = 85
REPORT_NAME = "report.html"
FILES_DIR = "report_files"
PANELS = ("input", "output", "target")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.img img { display: block; border: 1px solid #ccc; }
td.img span { display: block; color: #999; font-size: 0.8em; }
.missing { display: inline-block; color: #999; font-size: 0.85em; padding: 2em 0.5em; }
"""


def thumbnail(img: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 -> the same image with its longest side ``size`` (never enlarged)."""
    height, width = img.shape[:2]
    scale = min(1.0, size / max(height, width))
    if scale == 1.0:
        return img
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(img, new_size, interpolation=cv2.INTER_AREA)


@dataclass
class ReportImage:
    """One image of the report: thumbnail files and full-size links, relative to the report."""

    name: str
    thumbnails: Dict[str, Tuple[str, int, int]] = field(default_factory=dict)  # src, w, h
    #: full-size files (absolute or relative to the working directory); the output is saved
    #: after the callback runs, so links are made when the page is written
    full_size: Dict[str, Optional[Path]] = field(default_factory=dict)


def _file_link(path: Optional[Path], root: Path) -> Optional[str]:
    """A relative URL to ``path`` from ``root`` when it is a file on disk (not an LMDB key)."""
    if path is None or not path.is_file():
        return None
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


class TestReport:
    """Collects thumbnails while ``test.py`` runs and writes ``report.html`` at the end.

    Args:
        results_root: the run's results folder; the report and ``report_files/`` go there.
        title: shown at the top (the experiment name).
        details: extra ``label: value`` lines under the title (weights, device...).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self, results_root: str | Path, title: str, details: Optional[Dict[str, str]] = None
    ) -> None:
        self.root = Path(results_root)
        self.title = title
        self.details = details or {}
        self.images: Dict[str, Dict[str, ReportImage]] = {}

    def collector(
        self, dataset_name: str, output_dir: Optional[Path], output_file: Callable[[str], str]
    ) -> Callable[[Any, Dict[str, Any]], None]:
        """A callback for one test set: ``(image_result, loader_item) -> None``.

        ``image_result`` has ``name``, ``output`` and ``target`` ((H, W, 3) uint8 or None);
        ``loader_item`` (batch 1) has ``lq`` and ``lq_path`` / ``gt_path``. ``output_dir`` is
        where full-size outputs are saved (None: not saved), ``output_file`` maps an
        ``lq_path`` to the output's file name there.
        """
        images = self.images.setdefault(dataset_name, {})
        thumbs_dir = self.root / FILES_DIR / _safe_name(dataset_name)

        def record(result: Any, data: Dict[str, Any]) -> None:
            entry = ReportImage(result.name)
            lq_path = data["lq_path"][0]
            gt_path = data["gt_path"][0] if "gt_path" in data else None
            arrays = {
                "input": tensor_to_image(data["lq"][0]),
                "output": result.output,
                "target": result.target,
            }
            full = {
                "input": lq_path,
                "output": output_dir / output_file(lq_path) if output_dir is not None else None,
                "target": gt_path,
            }
            for panel in PANELS:
                img = arrays[panel]
                if img is None:
                    continue
                small = thumbnail(img)
                path = thumbs_dir / f"{_safe_name(result.name)}_{panel}.jpg"
                write_image(path, small, jpeg_quality=THUMBNAIL_QUALITY)
                src = Path(os.path.relpath(path, self.root)).as_posix()
                entry.thumbnails[panel] = (src, small.shape[1], small.shape[0])
                entry.full_size[panel] = Path(str(full[panel])) if full[panel] else None
            images[result.name] = entry

        return record

    def write(self, results: Dict[str, Any], metric_opts: Dict[str, Any]) -> Path:
        """Write ``report.html`` (atomically) from the metrics.json content; returns its path.

        ``metric_opts`` is the ``val.metrics`` block (names the metric types and directions).
        """
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(self.title)}: test report</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>{_e(self.title)}</h1>",
            '<p class="meta">',
            f"written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        ]
        parts += [f"<br>{_e(k)}: {_e(v)}" for k, v in self.details.items()]
        parts.append("</p>")
        for dataset_name, result in results.items():
            parts += self._dataset_section(dataset_name, result, metric_opts)
        parts.append("</body></html>")
        path = self.root / REPORT_NAME
        write_text_atomic(path, "\n".join(parts) + "\n")
        return path

    def _dataset_section(
        self, dataset_name: str, result: Dict[str, Any], metric_opts: Dict[str, Any]
    ) -> List[str]:
        means: Dict[str, float] = result.get("mean") or {}
        per_image: Dict[str, Dict[str, float]] = result.get("per_image") or {}
        names = list(means)
        arrows = {m: _arrow(metric_opts.get(m)) for m in names}
        out = [f"<h2>{_e(dataset_name)}: {len(per_image)} images</h2>"]
        if names:
            out.append("<table><tr><th></th>")
            out += [f'<th class="num">{_e(m)} {arrows[m]}</th>' for m in names]
            out.append("</tr><tr><td>mean</td>")
            out += [f'<td class="num">{_fmt(means[m])}</td>' for m in names]
            out.append("</tr></table>")
        key, direction = _sort_metric(names, metric_opts)
        order = list(per_image)
        if key is not None:
            # Worst first; images without the value (or NaN) go last.
            def badness(name: str) -> Tuple[int, float]:
                value = per_image[name].get(key, math.nan)
                if math.isnan(value):
                    return (1, 0.0)
                return (0, value if direction == "higher" else -value)

            order.sort(key=badness)
            out.append(f'<p class="meta">worst {_e(key)} first</p>')
        out.append("<table><tr><th>image</th>")
        out += [f"<th>{p}</th>" for p in PANELS]
        out += [f'<th class="num">{_e(m)} {arrows[m]}</th>' for m in names]
        out.append("</tr>")
        images = self.images.get(dataset_name, {})
        for name in order:
            entry = images.get(name, ReportImage(name))
            out.append(f'<tr><td class="name">{_e(name)}</td>')
            out += [_thumbnail_cell(entry, panel, self.root) for panel in PANELS]
            out += [f'<td class="num">{_fmt(per_image[name].get(m))}</td>' for m in names]
            out.append("</tr>")
        out.append("</table>")
        failed: Dict[str, str] = result.get("failed") or {}
        if failed:
            out.append(f"<h3>not evaluated: {len(failed)} image(s)</h3><ul>")
            out += [f"<li>{_e(name)}: {_e(reason)}</li>" for name, reason in failed.items()]
            out.append("</ul>")
        return out


def report_details(opt: Dict[str, Any], runtime: Any) -> Dict[str, str]:
    """The lines under the report's title: option file, weights, device and precision."""
    path_opt = opt.get("path") or {}
    details = {
        "options": str(opt.get("opt_path", "")),
        "weights": str(path_opt.get("pretrain_network_g") or "(random)"),
        "weights entry": str(path_opt.get("param_key_g") or "params (default)"),
        "device": f"{runtime.device_name()}, {runtime.precision}",
    }
    return {k: v for k, v in details.items() if v}


def _thumbnail_cell(entry: ReportImage, panel: str, root: Path) -> str:
    if panel not in entry.thumbnails:
        return '<td class="img"><span class="missing">none</span></td>'
    src, width, height = entry.thumbnails[panel]
    img = (
        f'<img src="{_e(src)}" width="{width}" height="{height}" '
        f'alt="{_e(entry.name)} {panel}" loading="lazy">'
    )
    link = _file_link(entry.full_size.get(panel), root)
    if link is None:
        note = "<span>not saved (val.save_img)</span>" if panel == "output" else ""
        return f'<td class="img">{img}{note}</td>'
    return f'<td class="img"><a href="{_e(link)}">{img}</a></td>'


def _sort_metric(names: List[str], metric_opts: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """The metric that orders the rows: PSNR when measured, else the first; and its direction."""
    if not names:
        return None, "higher"
    psnr = [m for m in names if (metric_opts.get(m) or {}).get("type") == "calculate_psnr"]
    key = psnr[0] if psnr else names[0]
    return key, metric_direction(metric_opts.get(key) or {}, f"val.metrics.{key}")


def _arrow(opt: Any) -> str:
    if not isinstance(opt, dict):
        return ""
    return "&uarr;" if metric_direction(opt) == "higher" else "&darr;"


def _fmt(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


__all__ = ["REPORT_NAME", "TestReport", "report_details", "thumbnail"]
