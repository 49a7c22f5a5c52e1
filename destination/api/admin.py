"""Admin routes (DESIGN §9): every event's fate, "retry now", dead letters (list, show, replay,
purge), metrics.

Every admin route takes the admin token alone (see admin_auth.py); /metrics is open for scrapers.
The token is checked before a body is read (FastAPI reads declared bodies before dependencies, so
the selection is read by the route itself), and the body is bounded like any other
(GSD_MAX_BODY_BYTES, GSD_BODY_TIMEOUT_SECONDS).
The JSON views are built in delivery/views.py, shared with the CLI and the status page.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from destination.api.admin_auth import AdminDep
from destination.api.body import off_loop, read_raw_body
from destination.delivery.views import EVENT_STATES_SHOWN, dead_letter_summary, event_summary, event_view
from destination.delivery.waiting import waiting_for
from destination.metrics import scrape
from destination.runtime import Runtime, RuntimeDep
from destination.status import rate_windows

router = APIRouter(tags=["Admin"])

MAX_ID = 2**63 - 1  # store ids are signed 64-bit integers; a larger id names nothing (404, or 0 acted on)
EventId = Annotated[int, Field(ge=1)]
MAX_USER_LENGTH = 512  # as long as an id ingest accepts; emails are shorter


class Selection(BaseModel):
    """Which events (dead letters to replay or purge, queued events to retry now): the listed ids
    (of `destination` only, when given too), a destination's, or every one with `all: true`.
    Nothing selected acts on nothing."""

    model_config = ConfigDict(extra="forbid")
    ids: list[EventId] | None = Field(None, description="event ids", max_length=10_000)
    destination: str | None = Field(None, description="every such event of this destination")
    all: bool = Field(False, description="every such event of every destination")


_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "not a selection; the error names the field"},
    408: {"description": "body not received within GSD_BODY_TIMEOUT_SECONDS"},
    413: {"description": "body larger than GSD_MAX_BODY_BYTES"},
}
_SELECTION_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": Selection.model_json_schema()}},
    }
}


async def read_selection(request: Request, runtime: Runtime) -> Selection:
    """The body's selection (none: nothing selected), read only once the admin token passed."""
    settings = runtime.settings
    raw = await read_raw_body(request, settings.max_body_bytes, settings.body_timeout_seconds)
    if not raw.strip() or raw.strip() == b"null":
        return Selection()
    try:
        return await off_loop(len(raw), lambda: Selection.model_validate_json(raw))
    except ValidationError as exc:
        problems = (f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise HTTPException(400, "; ".join(problems)) from None


NOTHING_SELECTED = 'nothing selected: give {"ids": [...]}, {"destination": "..."} or {"all": true}'


async def _act(
    selection: Selection, runtime: Runtime, verb: str
) -> tuple[int, str | None]:  # (count, why nothing was done)
    if selection.all and (selection.ids is not None or selection.destination is not None):
        raise HTTPException(400, "all: true selects everything; do not combine it with ids or destination")
    if not selection.all and not selection.ids and selection.destination is None:
        return 0, NOTHING_SELECTED
    store = runtime.store
    ids = None if selection.all else selection.ids
    if verb == "retry":
        return await store.retry_now(ids, selection.destination, now=time.time()), None
    act = store.replay_dead_letters if verb == "replay" else store.purge_dead_letters
    return await act(ids, selection.destination), None


async def _requeue(request: Request, runtime: Runtime, verb: str, key: str) -> dict[str, Any]:
    """Retry or replay the selected events; the workers look at once for what became due."""
    count, why = await _act(await read_selection(request, runtime), runtime, verb)
    if count:
        runtime.wake_workers()
    return _answer(key, count, why)


def _answer(key: str, count: int, why: str | None) -> dict[str, Any]:
    return {key: count} if why is None else {key: count, "message": why}


@router.get("/admin/events", summary="Events by destination and state, oldest first, a page at a time")
async def list_events(
    _: AdminDep,
    runtime: RuntimeDep,
    destination: str | None = None,
    state: Annotated[str | None, Query(description=f"one of {', '.join(EVENT_STATES_SHOWN)}")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    user: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_USER_LENGTH,
            description="the event's userId or anonymousId (exactly), or its person's email (any case)",
        ),
    ] = None,
) -> dict[str, Any]:
    if state is not None and state not in EVENT_STATES_SHOWN:
        raise HTTPException(400, f"state: expected one of {', '.join(EVENT_STATES_SHOWN)}")
    events = await runtime.store.list_events(destination, state, limit, offset, user=user)
    return {
        "events": [event_summary(e) for e in events],
        "offset": offset,
        "nextOffset": offset + limit if len(events) == limit else None,
    }


@router.get(
    "/admin/events/{destination_id}/{message_id:path}",  # a messageId may hold "/"
    summary="One event by messageId: its state and every attempt",
    responses={404: {"description": "no such event"}},
)
async def show_event(
    _: AdminDep, runtime: RuntimeDep, destination_id: str, message_id: str
) -> dict[str, Any]:
    found = await runtime.store.find_events(message_id, destination_id)
    if not found:
        raise HTTPException(404, f"no event with messageId {message_id!r} for destination {destination_id!r}")
    event = found[-1]  # the newest, should a messageId come back after the dedupe window
    configured = runtime.destinations.get(destination_id)
    tenant = configured.config.domain if configured is not None else None
    windows = rate_windows(runtime.settings)
    return event_view(event, await waiting_for(runtime.store, event, time.time(), tenant, windows))


@router.post(
    "/admin/events/retry",
    summary="Retry now: queued events waiting for a backoff (or the next budget window) become due",
    openapi_extra=_SELECTION_BODY,
    responses=_BODY_ERRORS,
)
async def retry_now(_: AdminDep, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    return await _requeue(request, runtime, "retry", "retried")


@router.get("/admin/dead-letters", summary="List dead letters, oldest first")
async def list_dead_letters(
    _: AdminDep,
    runtime: RuntimeDep,
    destination: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> dict[str, Any]:
    letters = await runtime.store.list_dead_letters(destination, limit, offset)
    return {"deadLetters": [dead_letter_summary(d) for d in letters]}


@router.get(
    "/admin/dead-letters/{event_id}",
    summary="One dead letter: the event and every attempt",
    responses={404: {"description": "no such dead letter"}},
)
async def show_dead_letter(
    _: AdminDep, runtime: RuntimeDep, event_id: Annotated[int, Path(ge=1)]
) -> dict[str, Any]:
    event = await runtime.store.get_dead_letter(event_id)
    if event is None:
        raise HTTPException(404, f"no dead letter with id {event_id}")
    return event_view(event)


@router.post(
    "/admin/dead-letters/replay",
    summary="Re-queue dead letters in their original order",
    openapi_extra=_SELECTION_BODY,
    responses=_BODY_ERRORS,
)
async def replay(_: AdminDep, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    return await _requeue(request, runtime, "replay", "replayed")


@router.post(
    "/admin/dead-letters/purge",
    summary="Delete dead letters for good",
    openapi_extra=_SELECTION_BODY,
    responses=_BODY_ERRORS,
)
async def purge(_: AdminDep, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    count, why = await _act(await read_selection(request, runtime), runtime, "purge")
    return _answer("purged", count, why)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    if runtime.settings.metrics_port is not None:  # served on its own address only
        raise HTTPException(404, "Not Found")
    body = await scrape(runtime.metrics, runtime.store, sorted(runtime.destinations))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
