"""Read a request body as JSON: gzip/deflate decoded, size-limited, with clear 4xx errors."""

from __future__ import annotations

import zlib
from typing import Any

from fastapi import HTTPException, Request

from destination.jsonutil import JSONDecodeError, loads


async def read_raw_body(request: Request, max_bytes: int) -> bytes:
    """The decoded body bytes; 413 when over `max_bytes` (before or after decompression)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise HTTPException(415, f"Content-Encoding {encoding} is not supported (use gzip or deflate)")
    return _decompress(body, encoding, max_bytes)


def _decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Every member of a gzip stream (RFC 1952 allows several), never more than max_bytes."""
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, detected
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:
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


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise HTTPException(400, "request body is empty: expected JSON")
    try:
        return loads(raw)
    except JSONDecodeError as exc:
        raise HTTPException(400, f"request body is not valid JSON: {exc}") from None


async def read_json(request: Request, max_bytes: int) -> Any:
    return parse_json(await read_raw_body(request, max_bytes))
