"""Connection limits uvicorn does not set by itself (DESIGN §4.2), as its HTTP protocol plus checks.

uvicorn (with httptools) bounds none of these: a connection that never sends a complete request
head is held for ever; a head may grow without limit (httptools buffers a header value whole);
every accepted connection holds a file descriptor until the file limit is spent and the service
stops answering; a response sent before the request body was read leaves the connection open to
a client trickling the rest. `limit_concurrency` does not help: it answers 503 only once a request
head is complete, while the idle sockets stay open. So, per connection:

- beyond `max_connections` open at once, a new connection is answered 503 and closed at once;
- its request head must arrive within `header_timeout_seconds` of the connection opening (or, on
  a kept-alive connection, of the head's first byte), else 408 and close;
- a head over `max_header_bytes` is answered 431 and closed, counted before it is parsed (at most
  one socket read past the limit is looked at);
- after a response sent before the request body was fully received, the rest of the body (and the
  next request's head) must arrive within `header_timeout_seconds`, else the connection is closed.

Idle kept-alive connections are closed by uvicorn after `timeout_keep_alive`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from destination.api.responses import error_body
from destination.jsonutil import dumps

log = logging.getLogger(__name__)

FILES_RESERVED = 256
"""File descriptors kept for everything but inbound connections: the store, outbound calls, logs."""


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_seconds: float
    max_header_bytes: int


def refusal(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer with the service's error body, closing the connection."""
    body = dumps(error_body(status, message))
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; `limits` is set by `limited_protocol`."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._head_open = True  # the next bytes belong to a request head
        self._head_bytes = 0
        self._head_tail = b""  # the last bytes of the head so far: its end may straddle two reads
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            message = f"too many connections (at most {self.limits.max_connections}: GSD_MAX_CONNECTIONS)"
            transport.write(refusal(503, "Service Unavailable", message))
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head_open and self._head_too_large(data):
            limit = self.limits.max_header_bytes
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"request head is larger than {limit} bytes (GSD_MAX_HEADER_BYTES)",
            )
            return
        super().data_received(data)

    def _head_too_large(self, data: bytes) -> bool:
        """Whether the head of which `data` is the next read passes the limit; counted before
        parsing, so that an oversize head is never parsed (nor buffered) whole."""
        seen = self._head_tail + data
        end = seen.find(b"\r\n\r\n")
        if end >= 0:  # the head ends in this read; what follows is body
            self._head_bytes += end + 4 - len(self._head_tail)
        else:
            self._head_bytes += len(data)
        self._head_tail = seen[-3:]
        return self._head_bytes > self.limits.max_header_bytes

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:  # the rest of a refused body
            self._head_open, self._head_bytes, self._head_tail = True, 0, b""

    def on_response_complete(self) -> None:
        if self.cycle is not None and self.cycle.more_body:
            # Answered before the body was read (a refusal): the rest is read and dropped (closing
            # now could make the client lose the answer), but only until the deadline.
            if self._head_timer is None:
                self._arm_head_timer()
        elif not self.pipeline:  # the next bytes start the next request's head
            self._head_open, self._head_bytes, self._head_tail = True, 0, b""
        super().on_response_complete()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_open:
            seconds = f"{self.limits.header_timeout_seconds:g}"
            self._refuse(
                408,
                "Request Timeout",
                f"request head not received within {seconds} seconds (GSD_HEADER_TIMEOUT_SECONDS)",
            )
        elif self.cycle is not None and self.cycle.response_complete and self.cycle.more_body:
            self.transport.close()  # the rest of a refused body did not arrive in time

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._head_open = False
        self._cancel_head_timer()
        self.transport.write(refusal(status, reason, message))
        self.transport.close()


def limited_protocol(limits: ConnectionLimits) -> type[LimitedHttpProtocol]:
    """The protocol class uvicorn is given (`Config(http=...)`), bound to these limits."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


def fit_file_limit(limits: ConnectionLimits) -> ConnectionLimits:
    """Raise the soft file limit towards the hard one if connections need it; when it still
    cannot hold `max_connections` (plus FILES_RESERVED), lower the connection limit and say so."""
    needed = limits.max_connections + FILES_RESERVED
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return limits
    allowed = max(1, soft - FILES_RESERVED)
    log.warning(
        "connection limit lowered to fit the file limit",
        extra={"GSD_MAX_CONNECTIONS": limits.max_connections, "maxConnections": allowed, "fileLimit": soft},
    )
    return ConnectionLimits(allowed, limits.header_timeout_seconds, limits.max_header_bytes)
