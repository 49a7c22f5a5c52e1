"""What web pages on other origins may do (DESIGN §4.2, §4.4).

- Sandbox mode (inbound auth off) refuses, with 403, any write request that carries an `Origin`
  other than the service's own (or one of GSD_CORS_ORIGINS) and a content type a page can send
  without a CORS preflight (text/plain, form encodings, or none): a page could otherwise post
  events, replay or purge through a browser on the same machine. Other content types need a
  preflight, which this service only grants to GSD_CORS_ORIGINS. With auth on, every content type
  is read as JSON (the RudderStack Node SDK labels gzipped JSON as a form; analytics.js beacons
  send text/plain), since credentials decide.
- Optional CORS (GSD_CORS_ORIGINS, none by default) for browser SDKs, on the ingest routes only:
  never on admin routes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from destination.api.responses import error_body
from destination.jsonutil import dumps

INGEST_PATH = re.compile(
    r"^(/v1(/d/[^/]+)?/(identify|group|track|page|screen|alias|batch)|(/v1/d/[^/]+)?/webhook)$"
)
SIMPLE_CONTENT_TYPES = frozenset(
    {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"}
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def own_origin(scope: Scope) -> str:
    host = _header(scope, b"host") or ""
    return f"{scope.get('scheme', 'http')}://{host}".lower()


def cross_origin_simple_request(scope: Scope, allowed: Sequence[str]) -> bool:
    """A write that a page on another origin could send without asking (no preflight)."""
    if scope.get("method", "GET") in _SAFE_METHODS:
        return False
    origin = _header(scope, b"origin")
    if origin is None:
        return False  # not sent by a browser on behalf of a page
    origin = origin.strip().lower().rstrip("/")
    if origin == own_origin(scope) or origin in allowed:
        return False
    media_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return media_type in SIMPLE_CONTENT_TYPES


class OriginGuard:
    """ASGI middleware: the sandbox refusal and the ingest-only CORS described above."""

    def __init__(self, app: ASGIApp, *, sandbox_guard: bool, cors_origins: Sequence[str]) -> None:
        self.app = app
        self.sandbox_guard = sandbox_guard
        self.allowed = tuple(origin.lower() for origin in cors_origins)
        self.cors: ASGIApp | None = None
        if cors_origins:
            self.cors = CORSMiddleware(
                app,
                allow_origins=list(cors_origins),
                allow_methods=["POST"],
                allow_headers=["authorization", "content-type", "content-encoding", "anonymousid"],
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.sandbox_guard and cross_origin_simple_request(scope, self.allowed):
            await _forbidden(send)
            return
        if self.cors is not None and INGEST_PATH.match(scope.get("path", "")):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _forbidden(send: Send) -> None:
    body = dumps(
        error_body(
            403,
            "cross-origin request refused: in sandbox mode (inbound auth off) a page on another "
            "origin may not post here; send application/json from a server, or set GSD_CORS_ORIGINS",
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
