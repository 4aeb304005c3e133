"""lptn-serve with 3D-LUT weights (``--weights``): a real server answers a FiveK photo with
the network's output on it, within a level."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from serve_test_utils import decode, post, start_server, stop_server

from lptn.photo import PhotoEnhancer
from lptn.platform.checkpoint_io import save_network

# The 3D-LUT network with a visible grade lives with the inference tests' helpers.
INFERENCE_TESTS = str(Path(__file__).resolve().parents[1] / "test_inference")
if INFERENCE_TESTS not in sys.path:
    sys.path.append(INFERENCE_TESTS)
from inference_test_utils import graded_lut_network  # noqa: E402


def test_serve_answers_with_the_lut_networks_output(tmp_path: Path, photo_paths: list) -> None:
    for module in ("starlette", "uvicorn", "python_multipart"):
        pytest.importorskip(module, reason="lptn-serve needs the 'serve' extra")
    weights = tmp_path / "lut3d.pth"
    save_network(graded_lut_network(), weights, arch={"type": "ImageAdaptive3DLUT"})
    srv = start_server(["--device", "cpu", "--weights", str(weights)], tmp_path / "server.log")
    try:
        status, _, body = post(srv.url, photo_paths[0].read_bytes())
    finally:
        code = stop_server(srv)
    assert status == 200, body[:300]
    assert code == -signal.SIGTERM and "Traceback" not in srv.log(), srv.log()
    source = decode(photo_paths[0].read_bytes())
    want = PhotoEnhancer.from_weights(weights, device="cpu").enhance_rgb(source).astype(int)
    assert np.abs(want - source.astype(int)).max() > 20  # a visible grade, not the identity
    got = decode(body).astype(int)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
