"""``lptn-serve``: the web page and HTTP API in one server process (uvicorn)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import List, Optional

from lptn.inference.settings import MAX_MEGAPIXELS
from lptn.platform.runtime import PRECISIONS

# Modules of the ``serve`` extra: (import name, distribution name).
SERVE_MODULES = (
    ("starlette", "starlette"),
    ("uvicorn", "uvicorn"),
    ("python_multipart", "python-multipart"),
    ("PIL", "Pillow"),
)


class MissingExtra(RuntimeError):
    """A module of the ``serve`` extra is not installed."""


def require_serve_extra() -> None:
    """MissingExtra naming the module and the extra when one is not importable."""
    for module, dist in SERVE_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(
                f"lptn-serve needs the optional 'serve' extra ({dist} is not installed): "
                "pip install 'lptn[serve]'"
            ) from None


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lptn-serve",
        description="Serve LPTN photo enhancement: a web page at / and the HTTP API "
        "POST /v1/enhance (one model, a bounded queue).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--weights", help="generator weights (.pth); default: the built-in FiveK weights"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "npu", "mps", "cpu"])
    parser.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    parser.add_argument(
        "--queue-size",
        type=_positive(int),
        default=16,
        help="requests accepted at once; more get 503 with Retry-After (default 16)",
    )
    parser.add_argument(
        "--max-batch",
        type=_positive(int),
        help="equal-size photos run through the network together "
        "(default: 8 on accelerators, 1 on the CPU)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=_positive(float),
        default=50.0,
        help="largest accepted upload in MB; larger ones get 413 (default 50)",
    )
    parser.add_argument(
        "--max-megapixels",
        type=_positive(float),
        default=MAX_MEGAPIXELS,
        help="largest accepted image in megapixels; larger ones get 413 "
        f"(default {MAX_MEGAPIXELS:g})",
    )
    parser.add_argument(
        "--jpeg-quality", type=int, default=95, help="quality of JPEG and WebP results, 1-100"
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    return parser


def serve_main(argv: Optional[List[str]] = None) -> int:
    """Parse the arguments, load the model once and serve until interrupted.

    Ctrl-C or SIGTERM shut the server down gracefully (requests in progress finish), after
    which uvicorn ends the process by that signal. Exit status 2: bad arguments, weights or
    device, the ``serve`` extra missing, or the port cannot be bound.
    """
    args = build_parser().parse_args(argv)
    if not 1 <= args.jpeg_quality <= 100:
        return _fail(f"--jpeg-quality must be within 1..100, got {args.jpeg_quality}")
    if not 0 <= args.port <= 65535:
        return _fail(f"--port must be within 0..65535, got {args.port}")
    try:
        require_serve_extra()
    except MissingExtra as err:
        return _fail(err)

    import uvicorn

    from lptn.photo import PhotoEnhancer
    from lptn.platform.checkpoint_io import CheckpointError
    from lptn.platform.logger import setup_logger
    from lptn.platform.options import OptionError
    from lptn.platform.runtime import DeviceError
    from lptn.serve.app import Limits, create_app
    from lptn.serve.work_queue import EnhanceQueue

    setup_logger()
    try:
        enhancer = PhotoEnhancer.from_weights(args.weights, args.device, args.precision)
    except (CheckpointError, DeviceError, OptionError, FileNotFoundError, ValueError) as err:
        return _fail(err)
    max_batch = args.max_batch or (1 if enhancer.runtime.device.type == "cpu" else 8)
    queue = EnhanceQueue(enhancer, queue_size=args.queue_size, max_batch=max_batch)
    limits = Limits(args.max_upload_mb, args.max_megapixels, args.jpeg_quality)
    weights = Path(args.weights).name if args.weights else "built-in"
    model = type(enhancer.net).__name__
    app = create_app(queue, limits, model_name=model, weights=weights)
    print(
        f"lptn-serve: {model} ({weights}) on "
        f"{enhancer.runtime.device} {enhancer.runtime.precision}; "
        f"open http://{args.host}:{args.port}/",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit:
        # uvicorn exits this way when it cannot listen (it has logged why, e.g. port in use).
        if server.started:
            raise
    finally:
        queue.close()
    if not server.started:
        return _fail(f"cannot listen on {args.host}:{args.port} (see the message above)")
    return 0


def _fail(err: BaseException | str) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2
