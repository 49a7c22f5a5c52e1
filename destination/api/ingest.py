"""Ingest (DESIGN §4.2): Segment / RudderStack HTTP-API shapes and webhooks.

A 200 means every event of the request is committed to the store (duplicates by messageId are
acknowledged but stored once). A batch is all or nothing: if any event is invalid the answer is
400, listing each bad event by index and field, and nothing of that request is stored.
Events of types Gainsight does not take (page, screen, alias, …) are acknowledged, counted and
not stored, so webhook senders that forward every event are not made to retry them.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Literal

from fastapi import APIRouter, Request

from destination.api.auth import destination_for
from destination.api.body import parse_json, read_raw_body
from destination.api.responses import JsonResponse
from destination.delivery.store import NewEvent
from destination.errors import EventError
from destination.events import checked_event, ordering_key
from destination.gainsight.plan import check_event, message_type
from destination.jsonutil import dumps
from destination.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["Ingest"])

SUPPORTED_TYPES = frozenset({"identify", "group", "track"})
# Metric labels stay a closed set whatever senders put in `type`.
_KNOWN_OTHER_TYPES = frozenset({"page", "screen", "alias"})
Shape = Literal["identify", "group", "track", "batch", "webhook"]
_MAX_LISTED_ERRORS = 50


def _raw_events(body: Any, shape: Shape) -> tuple[list[Any], bool]:
    """The events of a request body, and whether it was a list (for error positions)."""
    if shape == "batch":
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list):
            raise EventError('batch: expected {"batch": [event, ...]}')
        return batch, True
    if shape == "webhook" and isinstance(body, list):
        return body, True
    return [body], False


def _check(raw: Any, where: str, shape: Shape, runtime: Runtime) -> dict[str, Any] | None:
    """The event to store, None for a type Gainsight does not take; EventError when invalid.

    Only the event is judged here: when the destination's settings cannot serve it (say an
    access key is missing), it is still stored, and dead-lettered for replay once they can."""
    forced = shape if shape in SUPPORTED_TYPES else None
    event = checked_event(raw, where, forced)
    try:
        message_type(event)
    except EventError as exc:
        raise EventError(f"{where}.type: {exc.message}") from None
    try:
        kind = check_event(event, runtime.specs)
    except EventError as exc:
        raise EventError(f"{where}: {exc.message}") from None
    return event if kind is not None else None


async def ingest(
    request: Request, runtime: Runtime, shape: Shape, destination_id: str | None
) -> JsonResponse:
    raw = await read_raw_body(request, runtime.settings.max_body_bytes)
    destination = destination_for(request, runtime, raw, destination_id)
    metrics = runtime.metrics
    try:
        events, listed = _raw_events(parse_json(raw), shape)
    except EventError as exc:
        return JsonResponse({"error": exc.message}, 400)
    accepted: list[dict[str, Any]] = []
    ignored: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, raw_event in enumerate(events):
        where = f"batch[{index}]" if listed else "event"
        try:
            event = _check(raw_event, where, shape, runtime)
        except EventError as exc:
            errors.append({"index": index, "error": exc.message})
            continue
        if event is None:
            ignored.append({"index": index, "type": str(raw_event.get("type"))})
        else:
            accepted.append(event)
    if errors:
        metrics.rejected.labels(destination.id).inc(len(errors))
        shown = errors[:_MAX_LISTED_ERRORS]
        message = "; ".join(e["error"] for e in shown)
        return JsonResponse({"error": message, "errors": shown, "stored": 0}, 400)
    now = time.time()
    stored = await runtime.store.enqueue(
        [
            NewEvent(destination.id, e["messageId"], ordering_key(e), e["type"].lower(), dumps(e), now)
            for e in accepted
        ]
    )
    runtime.wake_workers()
    fresh_by_type = Counter(e["type"].lower() for e, fresh in zip(accepted, stored, strict=True) if fresh)
    for kind, count in fresh_by_type.items():
        metrics.ingested.labels(destination.id, kind).inc(count)
    duplicates = stored.count(False)
    if duplicates:
        metrics.duplicates.labels(destination.id).inc(duplicates)
    for item in ignored:
        kind = item["type"].lower()
        metrics.ignored.labels(destination.id, kind if kind in _KNOWN_OTHER_TYPES else "other").inc()
    return JsonResponse(
        {
            "success": True,
            "stored": stored.count(True),
            "duplicates": duplicates,
            "ignored": ignored,
            "messageIds": [e["messageId"] for e in accepted],
        }
    )


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "every event committed to the store (duplicates acknowledged, stored once)"},
    400: {"description": "invalid event(s): nothing stored; `errors` lists index and field"},
    401: {"description": "missing or invalid credentials"},
    413: {"description": "body over the size limit"},
}
_EVENT_SCHEMA = {"type": "object", "description": "a Segment/RudderStack event; unknown fields kept"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _add(path: str, shape: Shape, schema: dict[str, Any], summary: str) -> None:
    async def without_id(request: Request, runtime: RuntimeDep) -> JsonResponse:
        return await ingest(request, runtime, shape, None)

    async def with_id(request: Request, runtime: RuntimeDep, destination_id: str) -> JsonResponse:
        return await ingest(request, runtime, shape, destination_id)

    extra = _body(schema)
    router.add_api_route(
        path,
        without_id,
        methods=["POST"],
        summary=summary,
        responses=_RESPONSES,
        openapi_extra=extra,
        name=f"ingest_{shape}",
    )
    router.add_api_route(
        f"/v1/d/{{destination_id}}{path.removeprefix('/v1')}",
        with_id,
        methods=["POST"],
        summary=f"{summary} (named destination)",
        responses=_RESPONSES,
        openapi_extra=extra,
        name=f"ingest_{shape}_for_destination",
    )


_single: tuple[Shape, ...] = ("identify", "group", "track")
for _shape in _single:
    _add(f"/v1/{_shape}", _shape, _EVENT_SCHEMA, f"Accept one {_shape} event")
_add(
    "/v1/batch",
    "batch",
    {
        "type": "object",
        "required": ["batch"],
        "properties": {"batch": {"type": "array", "items": _EVENT_SCHEMA}},
    },
    "Accept a batch of events (all or nothing)",
)
_add(
    "/webhook",
    "webhook",
    {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]},
    "Accept one event or an array (RudderStack / Segment webhooks)",
)
