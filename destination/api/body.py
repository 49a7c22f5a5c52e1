"""Read a request body as JSON, with bounded work: a size limit (before and after decompression),
a time limit on receiving it, a cap on gzip members, and a nesting limit (DESIGN §4.2).

Large bodies are decoded and parsed off the event loop (`off_loop`), so one hostile request
cannot stall `/health` or other requests while it is worked through.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from destination.api.responses import error_response
from destination.jsonutil import JSONDecodeError, loads

MAX_DEPTH = 100
"""Events nested deeper than this are refused: everything stored can then be written back out
(orjson writes 255 levels; admin views wrap an event in a few more)."""
MAX_GZIP_MEMBERS = 64
"""RFC 1952 allows a stream of several members; real senders use one. Each costs a decoder."""
INLINE_BYTES = 64 * 1024
"""Bodies up to this size are handled on the event loop: a thread hop would cost more."""
PARSE_INLINE_BYTES = 1024 * 1024
"""Plain (undecoded) JSON up to this size is parsed on the event loop: orjson reads 1 MiB in about
a millisecond, while the hop to a thread and back cost a tenth of a 100-event transformer request.
Larger bodies, and anything to decompress (a small gzip body can inflate a lot), still go to a
thread, so a hostile 4 MiB body never stalls `/health`."""

T = TypeVar("T")


async def off_loop(size: int, work: Callable[[], T], inline_bytes: int = INLINE_BYTES) -> T:
    """Run CPU-bound `work` on the loop when the input is small, else in a worker thread."""
    if size <= inline_bytes:
        return work()
    return await asyncio.to_thread(work)


async def read_wire_body(request: Request, max_bytes: int, timeout_seconds: float) -> bytes:
    """The body bytes as sent; 413 over `max_bytes`, 408 when not received within the timeout."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(
            408,
            f"request body not received within {timeout_seconds:g} seconds",
            headers={"Connection": "close"},
        ) from None
    return b"".join(chunks)


def content_encoding(request: Request) -> str:
    """The body's Content-Encoding, lower-cased; 415 for one this service cannot decode."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return "identity"
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise HTTPException(415, f"Content-Encoding {encoding} is not supported (use gzip or deflate)")
    return encoding


def decode(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The decoded body, never more than max_bytes; 400 for corrupt data or too many members."""
    if encoding == "identity":
        return body
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, detected
    parts: list[bytes] = []
    size = 0
    rest = body
    members = 0
    while rest:
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise HTTPException(400, f"request body has more than {MAX_GZIP_MEMBERS} {encoding} members")
        decoder = zlib.decompressobj(wbits)
        try:
            part = decoder.decompress(rest, max_bytes + 1 - size)
        except zlib.error:
            raise HTTPException(400, f"request body is not valid {encoding} data") from None
        size += len(part)
        if size > max_bytes or decoder.unconsumed_tail:
            raise HTTPException(413, f"decompressed request body is larger than {max_bytes} bytes")
        if not decoder.eof:
            raise HTTPException(400, f"request body is truncated {encoding} data")
        parts.append(part)
        rest = decoder.unused_data if encoding != "deflate" else b""
    return b"".join(parts)


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0). Iterative, so
    any depth orjson accepts is measured without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse_json(raw: bytes, max_depth: int | None = MAX_DEPTH) -> Any:
    """One JSON document; 400 naming the problem (empty, invalid, nested deeper than the limit).
    `max_depth=None`: the caller checks the depth itself."""
    if not raw.strip():
        raise HTTPException(400, "request body is empty: expected JSON")
    try:
        value = loads(raw)
    except JSONDecodeError as exc:
        if "depth" in str(exc).lower() or "recursion" in str(exc).lower():
            raise HTTPException(400, f"request body nests JSON deeper than {MAX_DEPTH} levels") from None
        raise HTTPException(400, f"request body is not valid JSON: {exc}") from None
    if max_depth is not None and json_depth(value) > max_depth:
        raise HTTPException(400, f"request body nests JSON deeper than {MAX_DEPTH} levels")
    return value


async def read_raw_body(request: Request, max_bytes: int, timeout_seconds: float = 30.0) -> bytes:
    """The decoded body bytes (size- and time-limited)."""
    wire = await read_wire_body(request, max_bytes, timeout_seconds)
    encoding = content_encoding(request)
    if encoding == "identity":
        return wire  # nothing to decode: no work to move off the loop
    return await off_loop(len(wire), lambda: decode(wire, encoding, max_bytes))


class BoundedBody:
    """ASGI wrapper for an app that reads bodies its own way (the embedded simulator): the body
    is read here first, within `max_bytes` and the timeout, then handed on whole."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await read_wire_body(Request(scope, receive), self.max_bytes, self.timeout_seconds)
        except HTTPException as exc:
            await error_response(exc.status_code, str(exc.detail), headers=exc.headers)(scope, receive, send)
            return
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)
