"""What web pages on other origins may do (DESIGN §4.2, §4.4).

- Sandbox mode (inbound auth off) refuses, with 403, any write request that carries an `Origin`
  other than the service's own (or one of GSD_CORS_ORIGINS) and a content type a page can send
  without a CORS preflight (text/plain, form encodings, or none): a page could otherwise post
  events, replay or purge through a browser on the same machine. Other content types need a
  preflight, which this service only grants to GSD_CORS_ORIGINS. With auth on, every content type
  is read as JSON (the RudderStack Node SDK labels gzipped JSON as a form; analytics.js beacons
  send text/plain), since credentials decide.
- Sandbox mode also refuses, with 403, any request whose `Host` is a name other than `localhost`
  (or `*.localhost`) and GSD_HOST: a page whose domain is rebound to 127.0.0.1 (DNS rebinding) is
  same-origin with this service in the browser's eyes, but its requests still name its own domain.
  IP addresses are accepted: only a name can be rebound, and a page reaching an address is
  cross-origin (the rule above, and the browser's own same-origin policy for reads).
- The RudderStack transformer routes take no credentials (rudder-server sends none), so they refuse
  what a browser could send without a preflight, whatever the mode: any request carrying an
  `Origin` (403; rudder-server sends none) and any body not labelled `application/json` (415).
- Optional CORS (GSD_CORS_ORIGINS, none by default) for browser SDKs, on the ingest routes only:
  never on admin routes.
"""

from __future__ import annotations

import ipaddress
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


def _host_name(host: str) -> str:
    """The name or address of a Host header, without its port and brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def foreign_host(scope: Scope, configured_host: str | None) -> str | None:
    """The Host's name when it is not one this service answers to in sandbox mode (see above)."""
    host = _header(scope, b"host")
    if host is None:
        return None  # not sent by a browser
    name = _host_name(host)
    if name == "localhost" or name.endswith(".localhost") or _is_address(name):
        return None
    if configured_host is not None and name == _host_name(configured_host):
        return None
    return name


def transformer_refusal(scope: Scope) -> tuple[int, str] | None:
    """Why a request to a transformer route is one a browser page could send (status, message)."""
    if _header(scope, b"origin") is not None:
        return 403, "cross-origin request refused: the transformer routes serve rudder-server only"
    media_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        given = media_type or "(none)"
        return 415, f"Content-Type {given} refused: the transformer routes take application/json"
    return None


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

    def __init__(
        self,
        app: ASGIApp,
        *,
        sandbox_guard: bool,
        cors_origins: Sequence[str],
        configured_host: str | None = None,
        transformer_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.sandbox_guard = sandbox_guard
        self.configured_host = configured_host
        self.transformer_paths = frozenset(transformer_paths)
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
        if self.sandbox_guard:
            host = foreign_host(scope, self.configured_host)
            if host is not None:
                await _refuse(send, 403, f"Host {host} refused: {SANDBOX_HOSTS}")
                return
            if cross_origin_simple_request(scope, self.allowed):
                await _refuse(send, 403, CROSS_ORIGIN)
                return
        if scope.get("method") == "POST" and scope.get("path") in self.transformer_paths:
            refusal = transformer_refusal(scope)
            if refusal is not None:
                await _refuse(send, *refusal)
                return
        if self.cors is not None and INGEST_PATH.match(scope.get("path", "")):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)


CROSS_ORIGIN = (
    "cross-origin request refused: in sandbox mode (inbound auth off) a page on another "
    "origin may not post here; send application/json from a server, or set GSD_CORS_ORIGINS"
)
SANDBOX_HOSTS = (
    "in sandbox mode (inbound auth off) only localhost, IP addresses and GSD_HOST are answered "
    "(a page's domain rebound to this machine must not reach it)"
)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = dumps(error_body(status, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
