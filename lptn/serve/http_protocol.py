"""uvicorn's HTTP/1.1 protocol (h11) with a time limit on each request's head.

uvicorn times only idle keep-alive connections, and restarts that timer on every byte it
receives: a client that opens a connection and then sends its request line and headers a byte
at a time, or not at all, would hold the connection for ever. Here the head of every request
(from the connection, or the end of the previous answer, to the blank line after the headers)
must arrive within ``head_timeout_s``; then the connection is closed, with a 408 answer when
part of a request had come. Bodies are timed by the application (:mod:`lptn.serve.upload`),
which knows their size. h11 itself bounds a head to 16 KiB.
"""

from __future__ import annotations

import asyncio
import json
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def _timeout_answer(seconds: float) -> bytes:
    """A whole ``408 Request Timeout`` response with a JSON error, as bytes on the wire."""
    body = json.dumps(
        {"error": f"the request head did not arrive within {seconds:g} s", "status": 408}
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeadTimeoutH11Protocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose next request head is late."""

    head_timeout_s: float = 60.0  # per server: see protocol_with_head_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: Optional[asyncio.TimerHandle] = None
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a head arrived: its body is the application's to time
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        # A pipelined request may already have started; otherwise the next head is awaited
        # (also while uvicorn drops the rest of a body the answer did not need).
        if self.cycle is cycle and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being handled
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self.transport.write(_timeout_answer(self.head_timeout_s))
        self.transport.close()


def protocol_with_head_timeout(seconds: float) -> type[HeadTimeoutH11Protocol]:
    """The protocol class for uvicorn's ``http`` setting, with this head timeout (> 0)."""
    if not seconds > 0:
        raise ValueError(f"the head timeout must be positive, got {seconds}")
    return type("HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_s": seconds})
