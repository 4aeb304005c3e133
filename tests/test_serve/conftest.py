"""Fixtures for the lptn-serve tests: one real server process and the photos sent to it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
from serve_test_utils import API_KEY, Server, start_server, stop_server

SERVE_EXTRA = "lptn-serve needs the 'serve' extra (pip install -e '.[serve]')"
# The photo tests' helpers (photo_samples) make the phone JPEGs, Adobe RGB and grey files.
PHOTO_TESTS = str(Path(__file__).resolve().parents[1] / "test_photo")
if PHOTO_TESTS not in sys.path:
    sys.path.append(PHOTO_TESTS)


@pytest.fixture(scope="session")
def serve_args() -> List[str]:
    """The default model (the built-in weights) on the CPU."""
    return ["--device", "cpu"]


@pytest.fixture(scope="session")
def server(serve_args: List[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the API tests: queue of 16, 1 MB uploads, 0.5 megapixels."""
    for module in ("starlette", "uvicorn", "python_multipart", "PIL"):
        pytest.importorskip(module, reason=SERVE_EXTRA)
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    args = [*serve_args, "--queue-size", "16", "--max-upload-mb", "1", "--max-megapixels", "0.5"]
    srv = start_server(args, log_path)
    yield srv
    code = stop_server(srv)
    assert code == -signal.SIGTERM, f"lptn-serve ended with {code}:\n{srv.log()}"
    assert "Traceback" not in srv.log()


@pytest.fixture(scope="session")
def keyed_server(
    serve_args: List[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server that requires :data:`API_KEY` (from LPTN_API_KEY), with the default limits."""
    for module in ("starlette", "uvicorn", "python_multipart", "PIL"):
        pytest.importorskip(module, reason=SERVE_EXTRA)
    log_path = tmp_path_factory.mktemp("serve_keyed") / "server.log"
    srv = start_server(serve_args, log_path, env={"LPTN_API_KEY": API_KEY})
    yield srv
    code = stop_server(srv)
    assert code == -signal.SIGTERM, f"lptn-serve ended with {code}:\n{srv.log()}"
    assert "Traceback" not in srv.log()


@pytest.fixture(scope="session")
def photo_paths(fivek_sample_dir: Path) -> List[Path]:
    """Three small FiveK source photos (PNG, 512 px on the long side)."""
    return sorted((fivek_sample_dir / "source").glob("*.png"))[:3]
