"""Receiving uploads: the request body under the server's byte, time and concurrency limits.

A slow or stalled client must not hold what other clients need: an upload in progress takes
an *upload slot* (at most ``max_uploads`` at once, 503 beyond), never a queue slot, and must
arrive within ``upload_timeout_s`` (408 after). A ``Content-Length`` over the byte limit is
refused (413) before any byte is read; a body without one is refused as soon as it passes the
limit. A client that goes away mid-upload is one INFO line in the log, not an error. An
answer given before the body was read is sent at once; the rest of the body is then read and
dropped (:class:`AnswerBeforeBody`), so that a client still sending receives it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Dict, List, Optional

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from lptn.serve.limits import Limits

log = logging.getLogger("lptn.serve")
# Retry-After (seconds) when every upload slot is taken: uploads last seconds, not minutes.
UPLOADS_RETRY_AFTER_S = 2
# After an answer given before the whole body was read, up to this many more bytes of it are
# read and dropped (see AnswerBeforeBody).
DRAIN_BYTES = 64 * 1024 * 1024


class RequestError(Exception):
    """A request the server refuses; ``status`` and a plain-words message."""

    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class ClientGone(Exception):
    """The client closed the connection before its upload was complete (nothing to answer)."""


class UploadSlots:
    """At most ``size`` uploads being received at once. Used on the event loop only (no lock):
    every request's body is read there."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"max_uploads must be at least 1, got {size}")
        self.size = size
        self.in_progress = 0

    def take(self) -> _UploadSlot:
        """A slot (a context manager); RequestError 503 with Retry-After when none is free."""
        if self.in_progress >= self.size:
            raise RequestError(
                503,
                f"the server is busy: it is receiving {self.size} uploads already; "
                f"try again in {UPLOADS_RETRY_AFTER_S} s",
                {"Retry-After": str(UPLOADS_RETRY_AFTER_S)},
            )
        self.in_progress += 1
        return _UploadSlot(self)


class _UploadSlot:
    def __init__(self, slots: UploadSlots) -> None:
        self._slots = slots

    def __enter__(self) -> _UploadSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.in_progress -= 1


def declared_length(request: Request) -> Optional[int]:
    """The ``Content-Length`` header as a number (None without one); 400 when it is not one."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise RequestError(400, f"Content-Length must be a number of bytes, got {value!r}")
    return int(value)


def too_large(limit: int) -> RequestError:
    """The 413 error for an upload over ``limit`` bytes."""
    return RequestError(
        413, f"the upload is larger than the server's limit of {limit / 1024 / 1024:g} MB"
    )


def check_declared_length(request: Request, limits: Limits) -> None:
    """413 from the header alone, before the body is read, when it announces too many bytes."""
    declared = declared_length(request)
    if declared is not None and declared > limits.max_upload_bytes:
        raise too_large(limits.max_upload_bytes)


def client_name(request: Request) -> str:
    """``host:port`` of the request's client, for log lines."""
    client = request.client
    return f"{client.host}:{client.port}" if client else "a client"


async def read_body(request: Request, limits: Limits) -> bytes:
    """The request body, refusing with 413 as soon as it passes the byte limit and with 408
    (the connection then closed) when it has not arrived within the upload timeout.

    Raises ClientGone (after logging one INFO line) when the client disconnects first."""
    limit = limits.max_upload_bytes
    chunks: List[bytes] = []
    received = 0

    async def collect() -> None:
        nonlocal received
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit)  # answered by AnswerBeforeBody, which drops the rest
            chunks.append(chunk)
        request.state.body_received = True

    try:
        # wait_for, not asyncio.timeout: the package supports Python 3.9.
        await asyncio.wait_for(collect(), limits.upload_timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(
            408,
            f"the upload did not arrive within the server's limit of "
            f"{limits.upload_timeout_s:g} s ({_progress(request, received)})",
            {"Connection": "close"},
        ) from None
    except ClientDisconnect:
        log.info(
            "%s %s: %s disconnected during the upload (%s); nothing was done",
            request.method,
            request.url.path,
            client_name(request),
            _progress(request, received),
        )
        raise ClientGone() from None
    return b"".join(chunks)


def _progress(request: Request, received: int) -> str:
    declared = request.headers.get("content-length")
    if declared is not None:
        return f"{received} of {declared} bytes received"
    return f"{received} bytes received"


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


def upload_kind(request: Request) -> str:
    """``image`` (the raw body) or ``multipart``; 415 for any other Content-Type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("image/"):
        return "image"
    if content_type == "multipart/form-data":
        return "multipart"
    raise RequestError(
        415,
        "send the photo as the request body with Content-Type image/* (e.g. image/jpeg) or as "
        f"the multipart/form-data field 'image' (got Content-Type {content_type or 'none'!r})",
    )


async def receive_photo(request: Request, limits: Limits, slots: UploadSlots) -> bytes:
    """The photo of the request (raw body or multipart field ``image``), received in an upload
    slot. Everything that can be refused from the headers is refused before the body is read."""
    kind = upload_kind(request)
    check_declared_length(request, limits)
    with slots.take():
        body = await read_body(request, limits)
    if kind == "multipart":
        return await image_from_multipart(request, body)
    return body


def body_unread(request: Request) -> bool:
    """True when the request announced a body that has not been read whole."""
    if getattr(request.state, "body_received", False):
        return False
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    declared = request.headers.get("content-length", "0").strip()
    return chunked or (declared.isdigit() and int(declared) > 0)


class AnswerBeforeBody(JSONResponse):
    """A JSON answer to a request whose body has not been read (refused from its headers, or
    413 part way): sent at once, complete by its Content-Length, then the rest of the body is
    read and dropped (at most :data:`DRAIN_BYTES`, for at most ``drain_s``) before the response
    is ended. A client that asked to close the connection after the answer (urllib, HTTP/1.0)
    and is still sending would otherwise see the connection reset, its answer lost, when the
    server closes with unread data."""

    def __init__(
        self, content: object, status_code: int, headers: Dict[str, str], drain_s: float
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self.drain_s = drain_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": True})

        async def drop() -> None:
            dropped = 0
            while dropped <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                dropped += len(message.get("body", b""))

        try:
            await asyncio.wait_for(drop(), self.drain_s)
        except asyncio.TimeoutError:
            pass  # uvicorn drops what still comes, or closes the connection
        await send({"type": "http.response.body", "body": b"", "more_body": False})
