"""The web application: the page, ``POST /v1/enhance`` and ``GET /healthz`` (Starlette).

Every error is a JSON object ``{"error": "<plain words>", "status": <code>}``: 400 bad
parameters or unreadable image data, 404/405 unknown routes, 413 uploads over the byte or pixel
limit, 415 data that is not an image, 503 queue full (with ``Retry-After``), 500 a failure of
the server itself (logged with its traceback; the response carries only the message).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message

from lptn.inference.settings import MAX_MEGAPIXELS
from lptn.photo.photo_file import FORMAT_EXTENSIONS, MEDIA_TYPES
from lptn.serve.photo_adapter import (
    FORMATS,
    PhotoError,
    PhotoTooLarge,
    UnsupportedPhoto,
    enhance_photo_bytes,
    probe_photo,
)
from lptn.serve.work_queue import EnhanceQueue, QueueClosed, QueueFull

STATIC_DIR = Path(__file__).resolve().parent / "static"
# ``format`` query values: ours plus the usual file-extension spellings.
FORMAT_ALIASES = {**{f: f for f in FORMATS}, "jpg": "jpeg", "tif": "tiff"}
# Media type of a result -> the extension of its suggested file name.
RESULT_EXTENSIONS = {MEDIA_TYPES[name]: FORMAT_EXTENSIONS[name][1:] for name in FORMATS.values()}
log = logging.getLogger("lptn.serve")


@dataclass(frozen=True)
class Limits:
    """Upload limits: bytes of the request body, pixels announced by the image header."""

    max_upload_mb: float = 50.0
    max_megapixels: float = MAX_MEGAPIXELS
    jpeg_quality: int = 95

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class RequestError(Exception):
    """A request the server refuses; ``status`` and a plain-words message."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: Optional[Dict[str, str]] = None
) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def parse_query(request: Request) -> Tuple[float, Optional[str]]:
    """``strength`` (0..1, default 1) and ``format`` (None: the input's) from the query."""
    raw = request.query_params.get("strength", "1")
    try:
        strength = float(raw)
    except ValueError:
        raise RequestError(400, f"strength must be a number from 0 to 1, got {raw!r}") from None
    if not 0.0 <= strength <= 1.0:
        raise RequestError(400, f"strength must be a number from 0 to 1, got {raw}")
    fmt = request.query_params.get("format")
    if fmt is None or fmt == "":
        return strength, None
    if fmt.lower() not in FORMAT_ALIASES:
        raise RequestError(400, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return strength, FORMAT_ALIASES[fmt.lower()]


# After refusing an upload as too large, up to this many more bytes are read and dropped so
# that the client, still sending, receives the 413 instead of a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) as soon as it passes ``limit`` bytes."""
    too_large = RequestError(
        413, f"the upload is larger than the server's limit of {limit / 1024 / 1024:g} MB"
    )
    declared = request.headers.get("content-length")
    chunks = []
    size = 0
    stream = request.stream()
    if declared is None or not declared.isdigit() or int(declared) <= limit:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
        else:
            return b"".join(chunks)
    dropped = 0
    async for chunk in stream:
        dropped += len(chunk)
        if dropped > DRAIN_BYTES:
            break
    raise too_large


async def image_from_multipart(request: Request, body: bytes) -> bytes:
    """The ``image`` field of a multipart/form-data body that has already been read."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    form_request = Request(request.scope, replay)
    try:
        form = await form_request.form(max_files=4, max_fields=16)
    except HTTPException as err:
        raise RequestError(400, f"the multipart form cannot be read: {err.detail}") from None
    try:
        field = form.get("image")
        if field is None or isinstance(field, str):
            raise RequestError(
                400, "the multipart form has no file field named 'image'; send the photo there"
            )
        return await field.read()
    finally:
        await form.close()


async def upload_bytes(request: Request, limits: Limits) -> bytes:
    """The photo of the request: the raw body (``image/*``) or the multipart field ``image``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("image/"):
        return await read_body(request, limits.max_upload_bytes)
    if content_type == "multipart/form-data":
        body = await read_body(request, limits.max_upload_bytes)
        return await image_from_multipart(request, body)
    raise RequestError(
        415,
        "send the photo as the request body with Content-Type image/* (e.g. image/jpeg) or as "
        f"the multipart/form-data field 'image' (got Content-Type {content_type or 'none'!r})",
    )


def input_formats() -> List[str]:
    """The formats the pipeline reads here; HEIC and RAW only with their extras installed."""
    formats = ["jpeg", "png", "tiff", "webp", "bmp"]
    if importlib.util.find_spec("pillow_heif") is not None:
        formats.append("heic")
    if importlib.util.find_spec("rawpy") is not None:
        formats.append("raw")
    return formats


def create_app(
    queue: EnhanceQueue, limits: Limits, model_name: str = "LPTN", weights: str = "built-in"
) -> Starlette:
    """The ASGI application around one :class:`EnhanceQueue`; ``model_name`` and ``weights``
    (a file name) are reported by /healthz."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def healthz(request: Request) -> Response:
        enhancer = queue.enhancer
        runtime = enhancer.runtime
        info: Dict[str, Any] = {
            "status": "ok",
            "model": model_name,
            "weights": weights,
            "device": str(runtime.device),
            "precision": runtime.precision,
            "queue_length": queue.length,
            "queue_size": queue.queue_size,
            "max_batch": queue.max_batch,
            "max_upload_mb": limits.max_upload_mb,
            "max_megapixels": limits.max_megapixels,
            "formats": list(FORMATS),
            "input_formats": input_formats(),
            "images_done": queue.images_done,
        }
        return JSONResponse(info)

    async def enhance(request: Request) -> Response:
        try:
            strength, out_format = parse_query(request)
            with queue.admit():
                data = await upload_bytes(request, limits)
                info = probe_photo(data)
                if info.megapixels > limits.max_megapixels:
                    raise RequestError(
                        413,
                        f"the image is {info.width}x{info.height} pixels "
                        f"({info.megapixels:.1f} megapixels); the server's limit is "
                        f"{limits.max_megapixels:g} megapixels",
                    )
                content, media_type = await run_in_threadpool(
                    enhance_photo_bytes,
                    data,
                    queue,
                    strength=strength,
                    out_format=out_format,
                    jpeg_quality=limits.jpeg_quality,
                )
        except RequestError as err:
            return error_response(err.status, str(err), err.headers)
        except QueueFull as err:
            return error_response(503, str(err), {"Retry-After": str(err.retry_after)})
        except QueueClosed as err:
            return error_response(503, str(err), {"Retry-After": "5"})
        except PhotoTooLarge as err:
            return error_response(413, f"the image is too large to decode safely: {err}")
        except UnsupportedPhoto as err:
            return error_response(415, str(err))
        except PhotoError as err:
            return error_response(400, str(err))
        ext = RESULT_EXTENSIONS.get(media_type, "img")
        return Response(
            content,
            media_type=media_type,
            headers={"Content-Disposition": f'inline; filename="enhanced.{ext}"'},
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        # The traceback goes to the server's log only.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"the server failed to process this request: {exc}")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/v1/enhance", enhance, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
