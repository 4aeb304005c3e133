"""Load test of ``lptn-serve`` on localhost: throughput and latency percentiles.

Usage (from the repository root)::

    python benchmarks/load_test_serve.py [--requests 48] [--concurrency 4] [--max-seconds 120]
        [--photo PATH] [--url http://127.0.0.1:8000] [-- extra lptn-serve options]

Without ``--url`` it starts its own ``python -m lptn.serve`` (built-in FiveK weights, CPU) on a
free port and stops it afterwards. Only localhost is accepted. ``--concurrency`` client threads
send the same photo (by default a 512x341 FiveK PNG) as ``POST /v1/enhance`` until
``--requests`` have been sent or ``--max-seconds`` have passed, whichever comes first. A 503
(queue full) counts as refused, not retried. Latency is measured by the client, from sending
the request to reading the whole response.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LPTN_SHARED_DIR") or REPO.parent / "shared")
PHOTO = SHARED / "data" / "fivek_sample" / "source" / "a0212.png"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthz(url: str) -> dict:
    with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
        return json.loads(response.read())


def start_server(extra: List[str]) -> Tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "lptn.serve", "--port", str(port), "--log-level", "warning"]
    cmd += ["--device", "cpu", *extra]
    process = subprocess.Popen(cmd, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"lptn-serve exited with status {process.returncode}")
        try:
            healthz(url)
            return process, url
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            time.sleep(0.2)
    process.kill()
    raise SystemExit("lptn-serve did not start within 120 s")


def send(url: str, data: bytes, content_type: str) -> Tuple[int, float]:
    request = urllib.request.Request(
        url + "/v1/enhance", data=data, method="POST", headers={"Content-Type": content_type}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        err.read()
        status = err.code
    return status, time.perf_counter() - started


def upscaled_jpeg(data: bytes, megapixels: float) -> Tuple[bytes, str]:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    scale = (megapixels * 1e6 / (img.shape[0] * img.shape[1])) ** 0.5
    size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
    big = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes(), "image/jpeg"


def server_peak_mb(process: Optional[subprocess.Popen]) -> Optional[float]:
    """Peak resident memory of the server we started (Linux /proc), in MB."""
    if process is None:
        return None
    try:
        with open(f"/proc/{process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def percentile(values: List[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running lptn-serve on localhost (default: start one)")
    parser.add_argument("--requests", type=int, default=48, help="requests to send (default 48)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="duration cap (120)")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="the photo sent each time")
    parser.add_argument(
        "--megapixels",
        type=float,
        help="send the photo upscaled (bicubic) to about this many megapixels, as JPEG q95",
    )
    return parser


def send_load(
    url: str, data: bytes, content_type: str, requests: int, concurrency: int, max_seconds: float
) -> Tuple[List[Tuple[int, float]], float]:
    """Send ``requests`` uploads from ``concurrency`` threads, for ``max_seconds`` at most:
    ``(status, seconds)`` of each, and the wall time in seconds."""
    results: List[Tuple[int, float]] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                if next(counter, None) is None:
                    return
            outcome = send(url, data, content_type)
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return results, time.perf_counter() - started


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.max_seconds <= 0:
        parser.error("--requests, --concurrency and --max-seconds must be positive")
    if args.url and urlparse(args.url).hostname not in LOCAL_HOSTS:
        parser.error(f"--url must be on localhost ({', '.join(LOCAL_HOSTS)}), got {args.url}")
    data = args.photo.read_bytes()
    content_type = "image/jpeg" if args.photo.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    photo_name = args.photo.name
    if args.megapixels:
        data, content_type = upscaled_jpeg(data, args.megapixels)
        photo_name += f" upscaled to {args.megapixels:g} MP"

    process = None
    url = args.url.rstrip("/") if args.url else None
    if url is None:
        process, url = start_server(extra)
    try:
        info = healthz(url)
        send(url, data, content_type)  # warm-up, not counted
        results, wall = send_load(
            url, data, content_type, args.requests, args.concurrency, args.max_seconds
        )
    finally:
        peak_mb = server_peak_mb(process)
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    ok = [seconds for status, seconds in results if status == 200]
    refused = sum(1 for status, _ in results if status == 503)
    failed = len(results) - len(ok) - refused
    print(
        f"server: {info['model']} on {info['device']} {info['precision']}, "
        f"queue {info['queue_size']}, max batch {info['max_batch']}; photo {photo_name} "
        f"({len(data) / 1e3:.0f} kB)"
    )
    print(
        f"sent {len(results)} requests with {args.concurrency} client threads in {wall:.1f} s: "
        f"{len(ok)} ok, {refused} refused (503), {failed} failed"
    )
    if ok:
        print(
            f"throughput {len(ok) / wall:.2f} photos/s; latency p50 {percentile(ok, 50):.3f} s, "
            f"p90 {percentile(ok, 90):.3f} s, p99 {percentile(ok, 99):.3f} s, "
            f"mean {statistics.mean(ok):.3f} s, max {max(ok):.3f} s"
        )
    if peak_mb is not None:
        print(f"server peak resident memory {peak_mb:.0f} MB (VmHWM)")
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
