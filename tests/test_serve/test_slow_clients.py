"""Slow, stalled and vanishing clients against a real ``lptn-serve`` (queue of 4, 6 upload
slots, a 5 s upload timeout): they never hold a queue slot, are ended with 408, are refused
with 503 when every upload slot is taken, and a client that goes away is one INFO line."""

from __future__ import annotations

import re
import select
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, List

import cv2
import pytest
from serve_test_utils import (
    Server,
    decode,
    get_json,
    post,
    read_answer,
    stalled_upload,
    start_server,
    stop_server,
    upload_head,
    wait_for,
)

SERVE_EXTRA = "lptn-serve needs the 'serve' extra (pip install -e '.[serve]')"
UPLOAD_TIMEOUT_S = 5
MAX_UPLOADS = 6


@pytest.fixture(scope="module")
def slow_server(
    serve_args: List[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    for module in ("starlette", "uvicorn", "python_multipart", "PIL"):
        pytest.importorskip(module, reason=SERVE_EXTRA)
    log_path = tmp_path_factory.mktemp("serve_slow") / "server.log"
    args = [*serve_args, "--queue-size", "4", "--max-uploads", str(MAX_UPLOADS)]
    args += ["--upload-timeout", str(UPLOAD_TIMEOUT_S), "--log-level", "info"]
    srv = start_server(args, log_path)
    yield srv
    code = stop_server(srv)
    assert code == -signal.SIGTERM, f"lptn-serve ended with {code}:\n{srv.log()}"
    assert "Traceback" not in srv.log()


def uploads_in_progress(server: Server) -> int:
    return int(get_json(server.url + "/healthz")["uploads_in_progress"])


def not_answered(sock: socket.socket) -> bool:
    """Nothing has arrived on ``sock`` yet (no answer, not closed)."""
    return not select.select([sock], [], [], 0)[0]


def test_stalled_clients_do_not_starve_others_and_get_408(
    slow_server: Server, photo_paths: List[Path]
) -> None:
    """Four uploads stalled mid-body (the queue's size), one stalled after its head and one
    stalled inside its head: another client is served meanwhile; then each stalled one gets
    408 and its connection is closed."""
    data = photo_paths[0].read_bytes()
    mid_body = [
        stalled_upload(slow_server, upload_head(), declared=len(data), body=data[:2000])
        for _ in range(4)
    ]
    after_head = stalled_upload(slow_server, upload_head(), declared=len(data))
    in_head = stalled_upload(slow_server, upload_head()[:30])
    stalled = [*mid_body, after_head]
    try:
        wait_for("5 uploads in progress", lambda: uploads_in_progress(slow_server) == 5)
        assert get_json(slow_server.url + "/healthz")["queue_length"] == 0
        status, _, body = post(slow_server.url, data, "image/png")
        assert status == 200, body[:300]
        assert decode(body).shape == decode(data).shape
        # Served while they are still stalled, not after they were ended.
        assert all(not_answered(sock) for sock in [*stalled, in_head])
        for sock in stalled:
            status, headers, answer = read_answer(sock, timeout=60)
            assert status == 408, answer[:300]
            assert headers["connection"] == "close"
            assert f"within the server's limit of {UPLOAD_TIMEOUT_S} s" in answer.decode()
            assert sock.recv(1) == b""  # closed by the server
        status, headers, answer = read_answer(in_head, timeout=60)
        assert status == 408 and b"request head did not arrive" in answer
        assert in_head.recv(1) == b""
    finally:
        for sock in [*stalled, in_head]:
            sock.close()
    assert uploads_in_progress(slow_server) == 0


def test_every_upload_slot_taken_gets_503(slow_server: Server, photo_paths: List[Path]) -> None:
    data = photo_paths[1].read_bytes()
    held = [
        stalled_upload(slow_server, upload_head(), declared=len(data), body=data[:100])
        for _ in range(MAX_UPLOADS)
    ]
    try:
        wait_for("every upload slot taken", lambda: uploads_in_progress(slow_server) == 6)
        status, headers, body = post(slow_server.url, data, "image/png")
        assert status == 503, body[:300]
        assert f"receiving {MAX_UPLOADS} uploads" in body.decode()
        assert int(headers["retry-after"]) >= 1
    finally:
        for sock in held:
            sock.close()
    wait_for("the slots freed", lambda: uploads_in_progress(slow_server) == 0)
    assert post(slow_server.url, data, "image/png")[0] == 200


def test_client_gone_mid_upload_is_one_info_line(
    slow_server: Server, photo_paths: List[Path]
) -> None:
    data = photo_paths[2].read_bytes()
    sock = stalled_upload(
        slow_server, upload_head(), declared=len(data), body=data[: len(data) // 2]
    )
    port = sock.getsockname()[1]
    wait_for("the upload in progress", lambda: uploads_in_progress(slow_server) == 1)
    sock.close()
    wait_for("the upload given up", lambda: uploads_in_progress(slow_server) == 0)
    line = re.compile(rf"^.*127\.0\.0\.1:{port} disconnected during the upload.*$", re.M)
    wait_for("the log line", lambda: line.search(slow_server.log()) is not None, timeout=10)
    log = slow_server.log()
    found = line.findall(log)
    assert len(found) == 1, log
    assert " INFO: POST /v1/enhance: " in found[0]
    assert f"{len(data) // 2} of {len(data)} bytes received" in found[0]
    assert "Traceback" not in log and "ERROR" not in log, log


def test_full_queue_gets_503_with_retry_after(slow_server: Server, photo_paths: List[Path]) -> None:
    """Six 0.7-megapixel photos at once (one per upload slot) against a queue of 4: their
    bodies arrive within milliseconds and each takes the one model thread longer, so some are
    refused with 503 and Retry-After, the others are served; then the server serves again."""
    bgr = cv2.imread(str(photo_paths[0]), cv2.IMREAD_COLOR)
    big = cv2.imencode(".png", cv2.resize(bgr, None, fx=2, fy=2))[1].tobytes()
    start = threading.Barrier(MAX_UPLOADS)

    def send(_: int):
        start.wait()
        return post(slow_server.url, big, "image/png")

    with ThreadPoolExecutor(MAX_UPLOADS) as pool:
        responses = list(pool.map(send, range(MAX_UPLOADS)))
    statuses = [status for status, _, _ in responses]
    assert set(statuses) <= {200, 503}, statuses
    busy = [r for r in responses if r[0] == 503]
    assert busy, f"no request was refused: {statuses}"
    for _, headers, body in busy:
        assert "queued" in body.decode() and int(headers["retry-after"]) >= 1
    assert post(slow_server.url, big, "image/png")[0] == 200
    assert get_json(slow_server.url + "/healthz")["queue_length"] == 0


def test_head_sent_a_byte_at_a_time_is_ended(slow_server: Server) -> None:
    """A head trickled in (a byte every half second: every byte would restart uvicorn's own
    keep-alive timer) is ended by the head timeout long before it is complete."""
    head = upload_head() + b"X-Padding: " + b"p" * 200 + b"\r\nContent-Length: 10\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", slow_server.port), timeout=60)
    sent = 0
    try:
        for byte in head:
            if not not_answered(sock):
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed by the server
                break
            sent += 1
            time.sleep(0.5)
        assert sent < len(head), "the whole head was accepted at a byte per half second"
        status, _, answer = read_answer(sock, timeout=30)
        assert status == 408 and b"request head did not arrive" in answer
    finally:
        sock.close()
