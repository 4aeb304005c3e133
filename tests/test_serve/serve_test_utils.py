"""Helpers for the lptn-serve tests: a real server process on a free localhost port, HTTP
requests with the standard library, and decoding that does not use the code under test."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
# The key of the conftest's keyed server, given as the docs advise: in the environment.
API_KEY = "lptn-test-key-8c41f0"


def subprocess_env() -> Dict[str, str]:
    """This checkout first on the path; one intra-op thread (the machine is shared)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    args: List[str],
    log_path: Path,
    timeout: float = 90.0,
    env: Optional[Dict[str, str]] = None,
) -> Server:
    """``python -m lptn.serve`` with ``args`` (after ``--log-level warning``, which they may
    override) and ``env`` added to the environment, on a free port; returns once /healthz
    answers."""
    port = free_port()
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "lptn.serve", "--port", str(port), "--log-level", "warning", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**subprocess_env(), **(env or {})},
        cwd=REPO_ROOT,
    )
    log.close()
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lptn-serve exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"lptn-serve did not answer /healthz within {timeout} s:\n{server.log()}")


def stop_server(server: Server) -> Optional[int]:
    """SIGTERM, then wait; the exit status (None if it had to be killed).

    uvicorn shuts down gracefully, then ends by the signal: the status is -SIGTERM."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            return server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            return None
    return server.process.returncode


def post(
    url: str,
    data: bytes,
    content_type: str = "image/png",
    query: str = "",
    timeout: float = 120.0,
    headers: Optional[Dict[str, str]] = None,
    path: str = "/v1/enhance",
) -> Tuple[int, Dict[str, str], bytes]:
    """POST ``data`` to ``url`` + ``path`` + ``query``: (status, headers with lower-case
    names, body)."""
    request = urllib.request.Request(
        url + path + query,
        data=data,
        method="POST",
        headers={"Content-Type": content_type, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, lower_keys(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, lower_keys(err.headers), err.read()


def lower_keys(headers) -> Dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def multipart(field: str, filename: str, data: bytes, content_type: str) -> Tuple[bytes, str]:
    """A multipart/form-data body with one file field: (body, Content-Type header)."""
    boundary = "lptn-test-boundary-7d1e"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
    ).encode()
    body = head + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def decode(data: bytes) -> np.ndarray:
    """Encoded image -> RGB array as stored (8 or 16 bit), independent of the code under test."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"not a decodable image ({len(data)} bytes: {data[:80]!r})"
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def stalled_upload(
    server: Server, head: bytes, declared: Optional[int] = None, body: bytes = b""
) -> socket.socket:
    """A real client that stalls: it sends ``head`` (a request line and headers; with
    ``declared``, a Content-Length and the blank line after the headers), then ``body`` (part
    of what it announced), then nothing."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    if declared is not None:
        head += f"Content-Length: {declared}\r\n\r\n".encode()
    sock.sendall(head + body)
    return sock


def upload_head(path: str = "/v1/enhance", content_type: str = "image/png") -> bytes:
    """A POST request line and headers without Content-Length and the final blank line."""
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n".encode()


def read_answer(sock: socket.socket, timeout: float = 60.0) -> Tuple[int, Dict[str, str], bytes]:
    """The HTTP response on ``sock``: (status, headers with lower-case names, body)."""
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, lower_keys(response.headers), response.read()


def wait_for(what: str, ready, timeout: float = 60.0) -> None:
    """Poll ``ready()`` until true; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)
