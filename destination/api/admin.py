"""Admin routes: dead letters (list, show, replay, purge) and Prometheus metrics.

With inbound auth on, an admin call needs `Authorization: Bearer $GSD_ADMIN_TOKEN` (every
destination) or a destination's own credentials (that destination's dead letters only).
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from destination.api.auth import Unauthorized, authenticate
from destination.delivery.store import DeadLetter, StoredEvent
from destination.jsonutil import JSONDecodeError, loads
from destination.metrics import scrape
from destination.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["Admin"])


class Selection(BaseModel):
    """Which dead letters: the listed ids, else every one (of `destination`, when given)."""

    ids: list[int] | None = Field(None, description="dead-letter ids; omit for all")
    destination: str | None = Field(None, description="only this destination's dead letters")


def _scope(request: Request, runtime: Runtime) -> str | None:
    """None: every destination; else the one destination the caller may see."""
    if not runtime.auth_enabled:
        return None
    token = runtime.settings.admin_token
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if (
        token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(value.strip().encode(), token.get_secret_value().encode())
    ):
        return None
    try:
        return authenticate(request.headers, b"", list(runtime.destinations.values())).id
    except Unauthorized:
        raise Unauthorized(
            "admin routes need Bearer $GSD_ADMIN_TOKEN or a destination's credentials"
        ) from None


def _allowed(scope: str | None, destination: str | None) -> str | None:
    if scope is not None and destination not in (None, scope):
        raise HTTPException(403, f"these credentials only reach destination {scope!r}")
    return scope or destination


def _payload(event: StoredEvent) -> Any:
    try:
        return loads(event.payload)
    except JSONDecodeError:
        return base64.b64encode(event.payload).decode()


def dead_letter_summary(letter: DeadLetter) -> dict[str, Any]:
    """One line of a dead-letter list (admin route and CLI)."""
    return {
        "id": letter.id,
        "destination": letter.destination_id,
        "messageId": letter.message_id,
        "type": letter.kind,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "receivedAt": letter.received_at,
        "deadAt": letter.dead_at,
    }


def dead_letter_view(event: StoredEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "destination": event.destination_id,
        "messageId": event.message_id,
        "type": event.kind,
        "state": event.state,
        "reason": event.reason,
        "receivedAt": event.received_at,
        "attempts": [
            {
                "at": a.at,
                "outcome": a.outcome,
                "statusCode": a.status_code,
                "error": a.error,
                "response": a.response,
            }
            for a in event.history
        ],
        "event": _payload(event),
    }


@router.get("/admin/dead-letters", summary="List dead letters, oldest first")
async def list_dead_letters(
    request: Request,
    runtime: RuntimeDep,
    destination: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    which = _allowed(_scope(request, runtime), destination)
    letters = await runtime.store.list_dead_letters(which, limit, offset)
    return {"deadLetters": [dead_letter_summary(d) for d in letters]}


@router.get("/admin/dead-letters/{event_id}", summary="One dead letter: the event and every attempt")
async def show_dead_letter(request: Request, runtime: RuntimeDep, event_id: int) -> dict[str, Any]:
    scope = _scope(request, runtime)
    event = await runtime.store.get_dead_letter(event_id)
    if event is None or (scope is not None and event.destination_id != scope):
        raise HTTPException(404, f"no dead letter with id {event_id}")
    return dead_letter_view(event)


@router.post("/admin/dead-letters/replay", summary="Re-queue dead letters in their original order")
async def replay(request: Request, runtime: RuntimeDep, selection: Selection) -> dict[str, int]:
    which = _allowed(_scope(request, runtime), selection.destination)
    count = await runtime.store.replay_dead_letters(selection.ids, which)
    runtime.wake_workers()
    return {"replayed": count}


@router.post("/admin/dead-letters/purge", summary="Delete dead letters for good")
async def purge(request: Request, runtime: RuntimeDep, selection: Selection) -> dict[str, int]:
    which = _allowed(_scope(request, runtime), selection.destination)
    return {"purged": await runtime.store.purge_dead_letters(selection.ids, which)}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    if runtime.settings.metrics_port is not None:  # served on its own address only
        raise HTTPException(404, "Not Found")
    return Response(await scrape(runtime.metrics, runtime.store), media_type=CONTENT_TYPE_LATEST)
