"""The docstring examples of the public entry points: each one has some, `make test` runs them
(``pytest lptn --doctest-modules``), and a wrong example fails that run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lptn.archs import build_network
from lptn.inference.fast_lptn import FastLPTN
from lptn.inference.generator_weights import load_generator
from lptn.metrics import calculate_metric
from lptn.photo.enhancer import PhotoEnhancer
from lptn.photo.pipeline import enhance_photo_bytes

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = [
    PhotoEnhancer,
    load_generator,
    build_network,
    FastLPTN,
    enhance_photo_bytes,
    calculate_metric,
]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda e: e.__name__)
def test_entry_point_has_examples(entry: object) -> None:
    doc = entry.__doc__ or ""
    assert "    Examples:\n" in doc and ">>> " in doc, f"{entry!r} has no Examples: section"


def test_make_test_runs_the_doctests_of_lptn() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest: ", 1)[1].split("\n\n", 1)[0]
    assert "-m pytest tests " in recipe
    assert "-m pytest lptn --doctest-modules" in recipe


def _run_doctests(tmp_path: Path, expected: str) -> subprocess.CompletedProcess:
    module = tmp_path / "example_module.py"
    module.write_text(
        f'def psnr():\n    """\n    >>> 10 * __import__("math").log10(255**2 / 25)\n'
        f'    {expected}\n    """\n',
        encoding="utf-8",
    )
    # The project's pytest configuration (NUMBER, ELLIPSIS), as `make test` uses it.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "--doctest-modules",
            "-q",
            "-p",
            "no:cacheprovider",
            str(module),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_doctest_tolerance_is_the_digits_written(tmp_path: Path) -> None:
    done = _run_doctests(tmp_path, "34.15")  # the value is 34.1514...
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_example_fails_the_run(tmp_path: Path) -> None:
    done = _run_doctests(tmp_path, "34.25")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Expected:\n    34.25\nGot:\n    34.1514" in done.stdout
