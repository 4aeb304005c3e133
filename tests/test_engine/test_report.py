"""report.html of test.py, opened in a real browser (headless Chromium from Debian)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from lptn.data.image_io import read_image
from lptn.engine.cli import evaluate_main

REPO = Path(__file__).resolve().parents[2]
PAIRS = ("a0481", "a3203", "a4514")  # the two worst and one good image of the sample


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    # .ci/run installs Debian's chromium; only a developer's machine may lack it.
    (pytest.fail if os.environ.get("CI") else pytest.skip)(
        "headless Chromium not found (apt-get install chromium)"
    )
    raise AssertionError("unreachable")


def screenshot(html: Path, png: Path, width: int = 1100, height: int = 900) -> np.ndarray:
    """Render ``html`` in headless Chromium at 1 CSS px = 1 pixel; (H, W, 3) RGB uint8."""
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
        f"--screenshot={png}",
        html.resolve().as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return read_image(png)


def _find(page: np.ndarray, template: np.ndarray) -> tuple[float, tuple[int, int]]:
    scores = cv2.matchTemplate(page, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, where = cv2.minMaxLoc(scores)
    return best, where


def test_report_renders_offline_in_chromium(
    tmp_path: Path, fivek_sample_dir: Path, official_checkpoint: Path
) -> None:
    for part in ("source", "target"):
        (tmp_path / part).mkdir()
        for name in PAIRS:
            (tmp_path / part / f"{name}.png").symlink_to(fivek_sample_dir / part / f"{name}.png")
        (tmp_path / part / "broken.png").write_bytes(b"not a PNG")  # listed, not measured
    results = tmp_path / "results"
    code = evaluate_main(
        [
            "-opt",
            str(REPO / "options/test/LPTN/test_FiveK_sample.yml"),
            "--device",
            "cpu",
            "--set",
            f"datasets.test.dataroot_lq={tmp_path / 'source'}",
            f"datasets.test.dataroot_gt={tmp_path / 'target'}",
            f"path.pretrain_network_g={official_checkpoint}",
            f"path.results_root={results}",
            f"path.visualization={results / 'visualization'}",
            f"path.log={tmp_path}",
        ]
    )
    assert code == 1  # one image failed
    report = results / "report.html"
    text = report.read_text(encoding="utf-8")
    assert "not evaluated: 1 image(s)" in text and "<li>broken.png: " in text
    # Offline: nothing is fetched from anywhere but the results folder and the dataset.
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    assert "deltae &darr;" in text and "psnr &uarr;" in text

    page = screenshot(report, tmp_path / "report.png")
    assert page.shape[1] == 1100
    # The worst image's three thumbnails are drawn in one row, input | output | target.
    worst = re.search(r'<td class="name">(\w+)</td>', text).group(1)  # type: ignore[union-attr]
    spots = []
    for panel in ("input", "output", "target"):
        thumb = read_image(results / "report_files" / "fivek_sample" / f"{worst}_{panel}.jpg")
        score, (x, y) = _find(page, thumb)
        assert score > 0.95, (panel, score)
        spots.append((x, y))
    assert len({y for _, y in spots}) == 1
    assert spots[0][0] < spots[1][0] < spots[2][0]
