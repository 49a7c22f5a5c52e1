"""GET /status: the page for people (DESIGN §9), behind the admin token; its forms POST
/status/replay (dead letters) and POST /status/retry (retry now).

Server-rendered (Jinja2 templates shipped in the package), no script, no outside asset.
The forms are safe against cross-site requests even though a browser resends Basic
credentials by itself: they must carry a token only the page holds (derived from the admin token),
and a browser's Origin (or Referer) must be this service.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from destination import __version__
from destination.api.admin_auth import AdminDep
from destination.api.body import read_wire_body
from destination.delivery.views import iso
from destination.jsonutil import dumps
from destination.runtime import Runtime, RuntimeDep
from destination.status import gather
from destination.status_capacity import capacity_sections, duration

router = APIRouter(tags=["Admin"])

MAX_ID = 2**63 - 1
MAX_FORM_BYTES = 64 * 1024


@functools.cache
def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("destination", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(iso=iso, as_json=_as_json, duration=duration)
    return env


def _as_json(value: Any, limit: int = 2000) -> str:
    text = dumps(value).decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + " …"


def form_token(runtime: Runtime) -> str:
    """The page forms' anti-forgery token: only a page served behind the admin token holds it."""
    token = runtime.settings.admin_token
    assert token is not None  # the route is behind require_admin
    return hmac.new(token.get_secret_value().encode(), b"gsd status form", hashlib.sha256).hexdigest()


@router.get("/status", summary="Status page for people (HTML)", response_class=HTMLResponse)
async def status_page(
    _: AdminDep,
    request: Request,
    runtime: RuntimeDep,
    replayed: int | None = None,
    retried: int | None = None,
) -> HTMLResponse:
    destinations = await gather(
        runtime.store, runtime.destinations, runtime.settings, runtime.metrics.registry
    )
    capacity = await capacity_sections(runtime.store, runtime.destinations, runtime.settings, time.time())
    notice = None
    if replayed is not None:
        notice = f"Replayed {replayed} dead letter(s); delivery has started."
    elif retried:
        notice = f"{retried} waiting event(s) are due now; delivery has started."
    elif retried is not None:
        notice = "No queued event was waiting for a backoff or the next rate window."
    html = (
        templates()
        .get_template("status.html")
        .render(
            version=__version__,
            now=iso(time.time()),
            sandbox=runtime.sandbox,
            redirected_to=runtime.settings.gainsight_base_url,
            base=request.scope.get("root_path", ""),
            destinations=destinations,
            capacity=capacity,
            csrf=form_token(runtime),
            notice=notice,
        )
    )
    return HTMLResponse(html, headers=_PAGE_HEADERS)


# No outside assets, no framing by other sites, nothing cached by shared caches.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from; it must be this service. No header: not a browser."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    parts = urlsplit(source)
    return parts.netloc.lower() == request.headers.get("host", "").lower()


@router.post(
    "/status/replay",
    summary="The status page's replay button (HTML form)",
    status_code=303,
    responses={
        303: {"description": "back to /status"},
        400: {"description": "an id that is not a dead-letter id"},
        403: {"description": "forged or cross-site form"},
        408: {"description": "form not received within GSD_BODY_TIMEOUT_SECONDS"},
        413: {"description": "form larger than 64 KiB"},
    },
)
async def status_replay(_: AdminDep, request: Request, runtime: RuntimeDep) -> RedirectResponse:
    form = await _page_form(request, runtime, "replay")
    ids = [_form_id(v) for v in form.get("ids", [])]
    destination = form["destination"][0] if form.get("destination") else None
    if ids:
        count = await runtime.store.replay_dead_letters(ids, destination)
    elif destination:
        count = await runtime.store.replay_dead_letters(None, destination)
    else:
        count = 0  # nothing selected acts on nothing
    if count:
        runtime.wake_workers()
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/status?replayed={count}", status_code=303)


@router.post(
    "/status/retry",
    summary="The status page's retry-now button (HTML form): a destination's waiting events due now",
    status_code=303,
    responses={303: {"description": "back to /status"}, 403: {"description": "forged or cross-site form"}},
)
async def status_retry(_: AdminDep, request: Request, runtime: RuntimeDep) -> RedirectResponse:
    form = await _page_form(request, runtime, "retry")
    destination = form["destination"][0] if form.get("destination") else None
    count = await runtime.store.retry_now(None, destination, now=time.time()) if destination else 0
    if count:
        runtime.wake_workers()
    base = request.scope.get("root_path", "")
    return RedirectResponse(f"{base}/status?retried={count}", status_code=303)


async def _page_form(request: Request, runtime: Runtime, name: str) -> dict[str, list[str]]:
    """The fields of a form that came from this service's /status page, else 403. Read only once
    the admin token passed (AdminDep), within a form's size and the body timeout."""
    body = await read_wire_body(request, MAX_FORM_BYTES, runtime.settings.body_timeout_seconds)
    form = parse_qs(body.decode("utf-8", "replace"))
    presented = (form.get("csrf") or [""])[0]
    if not _same_origin(request) or not hmac.compare_digest(presented.encode(), form_token(runtime).encode()):
        raise HTTPException(403, f"the {name} form must come from this service's /status page")
    return form


def _form_id(value: str) -> int:
    # ASCII digits only ('²'.isdigit() is true), and few enough for int() (4,300 digits raise).
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))) or not (
        1 <= int(value) <= MAX_ID
    ):
        raise HTTPException(400, f"ids: {value[:30]!r} is not a dead-letter id")
    return int(value)
