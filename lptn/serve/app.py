"""The web application: the page, ``POST /v1/enhance``, ``POST /v1/preview`` and
``GET /healthz`` (Starlette).

Every error is a JSON object ``{"error": "<plain words>", "status": <code>}``: 400 bad or
unknown parameters or unreadable image data, 401 a missing or wrong API key (when the server
has one), 404/405 unknown routes, 408 an upload that did not arrive in time, 413 uploads over
the byte (from ``Content-Length`` when it is sent) or pixel limit, 415 data that is not an
image, 503 every upload slot or queue slot taken (with ``Retry-After``), 500 a failure of the
server itself (logged with its traceback; the response carries only the message). A request
is checked in that order of cost: key, query, headers, then its body is received in an upload
slot, and only then does it take a queue slot (:mod:`lptn.serve.upload`).
"""

from __future__ import annotations

import difflib
import hmac
import importlib.util
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lptn.photo.photo_file import FORMAT_EXTENSIONS, MEDIA_TYPES, PHOTO_EXTENSIONS
from lptn.platform.option_schema import PHOTO
from lptn.serve.photo_adapter import (
    FORMATS,
    PREVIEW_LONG_SIDE,
    PhotoError,
    PhotoTooLarge,
    UnsupportedPhoto,
    check_strength,
    enhance_photo_bytes,
    preview_photo_bytes,
    probe_photo,
)
from lptn.serve.upload import (
    AnswerBeforeBody,
    ClientGone,
    Limits,
    RequestError,
    UploadSlots,
    body_unread,
    receive_photo,
)
from lptn.serve.work_queue import EnhanceQueue, QueueClosed, QueueFull

__all__ = ["Limits", "RequestError", "create_app", "error_response", "parse_query"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
# ``format`` query values: ours plus the usual file-extension spellings.
FORMAT_ALIASES = {**{f: f for f in FORMATS}, "jpg": "jpeg", "tif": "tiff"}
# Media type of a result -> the extension of its suggested file name.
RESULT_EXTENSIONS = {MEDIA_TYPES[name]: FORMAT_EXTENSIONS[name][1:] for name in FORMATS.values()}
# The query parameters each endpoint takes; any other is refused by name.
ENHANCE_QUERY = ("strength", "format")
PREVIEW_QUERY = ("strength",)
log = logging.getLogger("lptn.serve")


def error_response(
    status: int, message: str, headers: Optional[Dict[str, str]] = None
) -> JSONResponse:
    """The JSON error body ``{"error": message, "status": status}`` with that HTTP status."""
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def check_query_names(request: Request, allowed: Sequence[str]) -> None:
    """400 for a query parameter the endpoint does not take (naming the closest one it does,
    so that ``strenght=0.5`` is not silently ignored) or one given twice."""
    names = [name for name, _ in request.query_params.multi_items()]
    for name in names:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RequestError(
                400,
                f"unknown query parameter {name!r}; {hint}"
                f"{request.url.path} takes {', '.join(allowed)}",
            )
        if names.count(name) > 1:
            raise RequestError(400, f"the query parameter {name!r} is given more than once")


def parse_strength(request: Request) -> float:
    """``strength`` (0..1, default 1) from the query, checked as ``lptn-enhance --strength``."""
    raw = request.query_params.get("strength")
    value: object = PHOTO.keys["strength"].default
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = raw  # refused by the check below, which quotes it
    try:
        return check_strength(value)
    except PhotoError as err:
        raise RequestError(400, str(err)) from None


def parse_query(request: Request) -> Tuple[float, Optional[str]]:
    """``strength`` (0..1, default 1) and ``format`` (None: the input's) of /v1/enhance."""
    check_query_names(request, ENHANCE_QUERY)
    strength = parse_strength(request)
    fmt = request.query_params.get("format")
    if fmt is None or fmt == "":
        return strength, None
    if fmt.lower() not in FORMAT_ALIASES:
        raise RequestError(400, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return strength, FORMAT_ALIASES[fmt.lower()]


def presented_keys(request: Request) -> List[str]:
    """The API keys a request presents: ``Authorization: Bearer KEY`` and ``X-API-Key: KEY``."""
    keys = []
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    header = request.headers.get("x-api-key", "").strip()
    if header:
        keys.append(header)
    return keys


def check_api_key(request: Request, api_key: Optional[str]) -> None:
    """401 unless the server has no key or the request presents it (compared in constant
    time, so the answer's timing tells nothing about how much of a guess was right)."""
    if api_key is None:
        return
    expected = api_key.encode()
    keys = presented_keys(request)
    # Every presented key is compared (no early exit), then the verdict is taken.
    matches = [hmac.compare_digest(key.encode(), expected) for key in keys]
    if any(matches):
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="lptn-serve"'}
    if not keys:
        raise RequestError(
            401,
            "this server needs an API key: send it as 'Authorization: Bearer KEY' or "
            "'X-API-Key: KEY'",
            challenge,
        )
    log.info("%s %s: refused a wrong API key", request.method, request.url.path)
    raise RequestError(401, "the API key is not valid for this server", challenge)


def input_formats() -> List[str]:
    """The formats the pipeline reads here; HEIC and RAW only with their extras installed."""
    formats = ["jpeg", "png", "tiff", "webp", "bmp"]
    if importlib.util.find_spec("pillow_heif") is not None:
        formats.append("heic")
    if importlib.util.find_spec("rawpy") is not None:
        formats.append("raw")
    return formats


def check_pixels(data: bytes, limits: Limits) -> None:
    """413 when the image header announces more than the server's megapixel limit."""
    info = probe_photo(data)
    if info.megapixels > limits.max_megapixels:
        raise RequestError(
            413,
            f"the image is {info.width}x{info.height} pixels "
            f"({info.megapixels:.1f} megapixels); the server's limit is "
            f"{limits.max_megapixels:g} megapixels",
        )


async def answer(
    request: Request, limits: Limits, run: Callable[[], Awaitable[Response]]
) -> Response:
    """``run()``'s response, or the JSON error for a refused request (given whole before the
    rest of an unread body is dropped: see :class:`~lptn.serve.upload.AnswerBeforeBody`)."""
    try:
        return await run()
    except ClientGone:
        return Response(status_code=400)  # nobody reads it; upload.read_body has logged why
    except Exception as err:
        refusal = refusal_of(err)
        if refusal is None:
            raise
    status, message, headers = refusal
    # A stalled client (408) is not waited for again: its connection is closed.
    if status != 408 and body_unread(request):
        content = {"error": message, "status": status}
        return AnswerBeforeBody(content, status, headers, drain_s=limits.upload_timeout_s)
    return error_response(status, message, headers)


def refusal_of(err: Exception) -> Optional[Tuple[int, str, Dict[str, str]]]:
    """(status, message, headers) of a refused request; None for a failure of the server."""
    if isinstance(err, RequestError):
        return err.status, str(err), err.headers
    if isinstance(err, QueueFull):
        return 503, str(err), {"Retry-After": str(err.retry_after)}
    if isinstance(err, QueueClosed):
        return 503, str(err), {"Retry-After": "5"}
    if isinstance(err, PhotoTooLarge):
        return 413, f"the image is too large to decode safely: {err}", {}
    if isinstance(err, UnsupportedPhoto):
        return 415, str(err), {}
    if isinstance(err, PhotoError):
        return 400, str(err), {}
    return None


def create_app(
    queue: EnhanceQueue,
    limits: Limits,
    model_name: str = "LPTN",
    weights: str = "built-in",
    api_key: Optional[str] = None,
) -> Starlette:
    """The ASGI application around one :class:`EnhanceQueue`; ``model_name`` and ``weights``
    (a file name) are reported by /healthz. With ``api_key``, /v1/ requests must present it;
    the page, its files and /healthz stay open (the page needs them to ask for the key)."""
    if api_key is not None and not api_key:
        raise ValueError("the API key must not be empty")
    uploads = UploadSlots(limits.max_uploads)

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
            "uploads_in_progress": uploads.in_progress,
            "max_uploads": uploads.size,
            "upload_timeout_s": limits.upload_timeout_s,
            "max_upload_mb": limits.max_upload_mb,
            "max_megapixels": limits.max_megapixels,
            "formats": list(FORMATS),
            "input_formats": input_formats(),
            # File names the page's chooser offers (RAW and HEIC have no image/* type there).
            "input_extensions": sorted(PHOTO_EXTENSIONS),
            "preview_long_side": PREVIEW_LONG_SIDE,
            "api_key_required": api_key is not None,
            "images_done": queue.images_done,
        }
        return JSONResponse(info)

    async def enhance(request: Request) -> Response:
        async def run() -> Response:
            check_api_key(request, api_key)
            strength, out_format = parse_query(request)
            data = await receive_photo(request, limits, uploads)
            with queue.admit():
                check_pixels(data, limits)
                content, media_type = await run_in_threadpool(
                    enhance_photo_bytes,
                    data,
                    queue,
                    strength=strength,
                    out_format=out_format,
                    jpeg_quality=limits.jpeg_quality,
                )
            ext = RESULT_EXTENSIONS.get(media_type, "img")
            return Response(
                content,
                media_type=media_type,
                headers={"Content-Disposition": f'inline; filename="enhanced.{ext}"'},
            )

        return await answer(request, limits, run)

    async def preview(request: Request) -> Response:
        async def run() -> Response:
            check_api_key(request, api_key)
            check_query_names(request, PREVIEW_QUERY)
            strength = parse_strength(request)
            data = await receive_photo(request, limits, uploads)
            with queue.admit():
                check_pixels(data, limits)
                content = await run_in_threadpool(
                    preview_photo_bytes, data, queue, strength=strength
                )
            return Response(content, media_type="image/png")

        return await answer(request, limits, run)

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
        Route("/v1/preview", preview, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
