"""benchmarks/bench_data_check.py runs end to end on a small set and reports its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_check_benchmark_reports_its_times(tmp_path: Path, shared_dir: Path) -> None:
    keep = tmp_path / "pairs"
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_data_check.py", "--pairs", "30", "--keep", str(keep)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LPTN_SHARED_DIR": str(shared_dir)},
    )
    assert run.returncode == 0, run.stderr
    assert "from 23 FiveK sample photos" in run.stdout
    assert "header check (60 images" in run.stdout
    assert len(list((keep / "gt").glob("IMG_*_edited.jpg"))) == 30
