"""scripts/benchmark_data.py: every backend measured on a given dataset, table and JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "benchmark_data", REPO / "scripts" / "benchmark_data.py"
)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_every_backend_and_augmentation_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    for side in ("lq", "gt"):
        (tmp_path / side).mkdir()
        for i in range(3):
            img = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
            assert cv2.imwrite(str(tmp_path / side / f"im{i}.png"), img)
    report_file = tmp_path / "bench.json"
    assert (
        bench.main(
            [
                "--lq",
                str(tmp_path / "lq"),
                "--gt",
                str(tmp_path / "gt"),
                "--gt-size",
                "16",
                "--batch-size",
                "2",
                "--batches",
                "2",
                "--repeat",
                "1",
                "--workers",
                "0",
                "--augment",
                "cpu",
                "device",
                "--json",
                str(report_file),
            ]
        )
        == 0
    )
    report = json.loads(report_file.read_text())
    rows = {(r["backend"], r["augment"]): r for r in report["rows"]}
    assert set(rows) == {(b, a) for b in ("disk", "lmdb", "memory") for a in ("cpu", "device")}
    assert all(r["samples_per_s"] > 0 and r["workers"] == 0 for r in rows.values())
    # the memory backend holds both folders decoded: 2 x 3 images of 40 x 48 x 3 bytes
    assert rows[("memory", "cpu")]["decoded_mb"] * 2**20 == pytest.approx(6 * 40 * 48 * 3)
    assert report["dataset"]["images"] == 3 and "CPU" in report["machine"]
    table = capsys.readouterr().out
    assert "| memory | 0 | device |" in table and "samples/s" in table
