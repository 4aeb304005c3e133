"""``lptn-serve``: the web page and HTTP API in one server process (uvicorn)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional

from lptn.platform.option_schema import DEVICES, OPTIONS, PRECISION_NAMES, VAL
from lptn.serve.limits import Limits

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
# The API key from the environment (a key given on the command line shows in ``ps``).
API_KEY_VARIABLE = "LPTN_API_KEY"

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
    """The ``lptn-serve`` argument parser; defaults come from ``ServeSettings``."""
    # Imported here, as in ServeSettings.from_args: lptn.photo (the image libraries) loads
    # when a parser is built, not when this module is imported.
    from lptn.photo.settings import add_photo_limit_arguments

    parser = argparse.ArgumentParser(
        prog="lptn-serve",
        description="Serve LPTN photo enhancement: a web page at / and the HTTP API "
        "POST /v1/enhance, POST /v1/preview (one model, a bounded queue).",
    )
    defaults = ServeSettings
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=defaults.port, help=f"TCP port (default {defaults.port})"
    )
    parser.add_argument(
        "--weights", help="generator weights (.pth); default: the built-in FiveK weights"
    )
    parser.add_argument("--device", default=defaults.device, choices=DEVICES)
    parser.add_argument("--precision", default=defaults.precision, choices=sorted(PRECISION_NAMES))
    parser.add_argument(
        "--queue-size",
        type=_positive(int),
        default=defaults.queue_size,
        help="requests held at once after their upload has arrived; more get 503 with "
        f"Retry-After (default {defaults.queue_size})",
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
        default=Limits.max_upload_mb,
        help="largest accepted upload in MB; larger ones get 413 "
        f"(default {Limits.max_upload_mb:g})",
    )
    add_photo_limit_arguments(
        parser, megapixels_help="largest accepted image in megapixels; larger ones get 413"
    )
    parser.add_argument(
        "--max-uploads",
        type=_positive(int),
        default=Limits.max_uploads,
        help="uploads received at once (they do not hold queue slots); more get 503 with "
        f"Retry-After (default {Limits.max_uploads})",
    )
    parser.add_argument(
        "--upload-timeout",
        type=_positive(float),
        default=Limits.upload_timeout_s,
        metavar="SECONDS",
        help="time allowed for a request's head, and then for its body, to arrive; later "
        f"ones get 408 and their connection is closed (default {Limits.upload_timeout_s:g})",
    )
    parser.add_argument(
        "--api-key",
        help=f"require this key on /v1/ requests (401 without it); better: set "
        f"{API_KEY_VARIABLE}, which other users cannot see in the process list",
    )
    parser.add_argument("--log-level", default=defaults.log_level, choices=LOG_LEVELS)
    return parser


@dataclass(frozen=True)
class ServeSettings:
    """One ``lptn-serve`` run, checked: where to listen, the model and its device, the queue
    (``max_batch`` None: 8 on accelerators, 1 on the CPU), the request ``limits``, the API key
    (None: none required) and uvicorn's log level."""

    host: str = "127.0.0.1"
    port: int = 8000
    weights: Optional[str] = None
    device: str = OPTIONS.keys["device"].default
    precision: str = VAL.keys["precision"].default
    queue_size: int = 16
    max_batch: Optional[int] = None
    limits: Limits = field(default_factory=Limits)
    api_key: Optional[str] = None
    log_level: str = "info"

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ
    ) -> ServeSettings:
        """The settings from :func:`build_parser`'s arguments and the environment's API key.

        Raises:
            ValueError: a bad value, in one line naming the flag (the photo options are
                checked as ``lptn-enhance`` checks them).
        """
        from lptn.photo.settings import PhotoSettings

        photo = PhotoSettings.checked(
            {"jpeg_quality": "--jpeg-quality", "max_megapixels": "--max-megapixels"},
            jpeg_quality=args.jpeg_quality,
            max_megapixels=args.max_megapixels,
        )
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be within 0..65535, got {args.port}")
        api_key = args.api_key if args.api_key is not None else environ.get(API_KEY_VARIABLE)
        if api_key is not None and not api_key.strip():
            source = "--api-key" if args.api_key is not None else API_KEY_VARIABLE
            raise ValueError(
                f"{source} is empty; give a key or leave it unset to serve without one"
            )
        limits = Limits(
            args.max_upload_mb,
            args.max_megapixels,  # checked by PhotoSettings above
            photo.jpeg_quality,
            max_uploads=args.max_uploads,
            upload_timeout_s=args.upload_timeout,
        )
        return cls(
            host=args.host,
            port=args.port,
            weights=args.weights,
            device=args.device,
            precision=args.precision,
            queue_size=args.queue_size,
            max_batch=args.max_batch,
            limits=limits,
            api_key=api_key,
            log_level=args.log_level,
        )


def serve_main(argv: Optional[List[str]] = None) -> int:
    """Parse the arguments, load the model once and serve until interrupted.

    Ctrl-C or SIGTERM shut the server down gracefully (requests in progress finish), after
    which uvicorn ends the process by that signal. Exit status 2: bad arguments, weights or
    device, the ``serve`` extra missing, or the port cannot be bound.
    """
    args = build_parser().parse_args(argv)
    try:
        settings = ServeSettings.from_args(args)
        require_serve_extra()
    except (ValueError, MissingExtra) as err:
        return _fail(err)
    return run_server(settings)


def run_server(settings: ServeSettings) -> int:
    """Load the model once and serve until interrupted; the exit status of :func:`serve_main`
    (the ``serve`` extra must be installed)."""
    import uvicorn

    from lptn.photo import PhotoEnhancer
    from lptn.platform.checkpoint_io import CheckpointError
    from lptn.platform.logger import setup_logger
    from lptn.platform.options import OptionError
    from lptn.platform.runtime import DeviceError
    from lptn.serve.app import create_app
    from lptn.serve.http_protocol import protocol_with_head_timeout
    from lptn.serve.work_queue import EnhanceQueue

    setup_logger(level=getattr(logging, settings.log_level.upper()))
    try:
        enhancer = PhotoEnhancer.from_weights(settings.weights, settings.device, settings.precision)
    except (CheckpointError, DeviceError, OptionError, FileNotFoundError, ValueError) as err:
        return _fail(err)
    max_batch = settings.max_batch or (1 if enhancer.runtime.device.type == "cpu" else 8)
    queue = EnhanceQueue(enhancer, queue_size=settings.queue_size, max_batch=max_batch)
    limits = settings.limits
    weights = Path(settings.weights).name if settings.weights else "built-in"
    model = type(enhancer.net).__name__
    app = create_app(queue, limits, model_name=model, weights=weights, api_key=settings.api_key)
    print(
        f"lptn-serve: {model} ({weights}) on "
        f"{enhancer.runtime.device} {enhancer.runtime.precision}; "
        f"open http://{settings.host}:{settings.port}/"
        + ("; an API key is required" if settings.api_key else ""),
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # h11 with a time limit on request heads (uvicorn has none); see http_protocol.
        http=protocol_with_head_timeout(limits.upload_timeout_s),
    )
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
        return _fail(f"cannot listen on {settings.host}:{settings.port} (see the message above)")
    return 0


def _fail(err: BaseException | str) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2
