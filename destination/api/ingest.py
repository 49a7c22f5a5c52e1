"""Ingest (DESIGN §4.2): Segment / RudderStack HTTP-API shapes and webhooks.

Real SDKs drop a whole batch on a 4xx, so one bad event never costs the others:
- 400 only when the request itself is unusable (not JSON, not the route's shape, no events),
  401 bad credentials, 408 body too slow, 413 too large, 503/507 the store cannot commit;
- otherwise 200 once every usable event of the request is committed (a duplicate messageId is
  acknowledged, stored once). Items that are not events (events.py says what that means) are
  listed in the answer's `rejected` with index, field and reason, counted and logged, not stored;
  so are events over GSD_MAX_EVENT_FIELDS or GSD_MAX_EVENT_BYTES (events.over_limits).
  Events Gainsight cannot take as they are (identify without an email, …) are stored: the
  delivery path finishes them as `rejected` with the planner's reason. page / screen / alias are
  acknowledged and counted, not stored.

Work is bounded: credentials in headers (write key, JWT) are checked before the body is read,
an X-Signature over the body as received before it is decoded; large bodies are decoded, parsed
and checked off the event loop (body.py).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request

from destination.api.auth import authenticated_body, signed_by_body
from destination.api.body import (
    INLINE_BYTES,
    MAX_DEPTH,
    content_encoding,
    decode,
    json_depth,
    off_loop,
    parse_json,
)
from destination.api.responses import ERROR_SCHEMA, JsonResponse, error_response
from destination.config import Destination
from destination.delivery.store import NewEvent, StoreUnavailableError
from destination.events import STORED_TYPES, EventLimits, NotAnEvent, as_event, ordering_key, over_limits
from destination.gainsight.plan import delivery_cost
from destination.jsonutil import dumps
from destination.runtime import Runtime, RuntimeDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["Ingest"])

Shape = Literal["identify", "group", "track", "page", "screen", "alias", "batch", "webhook"]
SINGLE_SHAPES: tuple[Shape, ...] = ("identify", "group", "track", "page", "screen", "alias")
MAX_LISTED_REJECTED = 100
"""The answer lists this many rejected items at most; `rejectedCount` counts them all."""


@dataclass
class Prepared:
    """A request body worked through: what to store, acknowledge and reject."""

    new_events: list[NewEvent] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0
    first_reason: str = ""

    def reject(self, index: int, problem: NotAnEvent) -> None:
        self.rejected_count += 1
        if not self.first_reason:
            self.first_reason = f"{problem.field or 'event'}: {problem.reason}"
        if len(self.rejected) < MAX_LISTED_REJECTED:
            self.rejected.append({"index": index, "field": problem.field, "reason": problem.reason})


def _items(body: Any, shape: Shape) -> tuple[list[Any], int]:
    """The items of a request body, and how many levels of nesting the route's shape adds."""
    if shape == "batch":
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list):
            raise HTTPException(400, 'batch: expected {"batch": [event, ...]}')
        items, wrapping = batch, 2
    elif shape == "webhook" and isinstance(body, list):
        items, wrapping = body, 1
    else:
        items, wrapping = [body], 0
    if not items:
        raise HTTPException(400, "the request holds no events")
    return items, wrapping


def prepare(
    wire: bytes,
    encoding: str,
    shape: Shape,
    destination: Destination,
    max_bytes: int,
    limits: EventLimits,
    signed: bool,
) -> Prepared:
    """Decode, parse and sort out one request body. Pure CPU work, run off the loop when large.
    `signed`: the body's X-Signature authenticated it, so the body can be replayed as it is; its
    events without a messageId get one derived from the signed bytes, and a replay is a duplicate."""
    body = parse_json(decode(wire, encoding, max_bytes), max_depth=None)
    items, wrapping = _items(body, shape)
    if json_depth(body) > MAX_DEPTH + wrapping:
        raise HTTPException(400, f"request body nests JSON deeper than {MAX_DEPTH} levels")
    forced = None if shape in ("batch", "webhook") else shape
    prepared = Prepared()
    now = time.time()
    seed = f"sig-{hashlib.sha256(wire).hexdigest()[:32]}-" if signed else None
    for index, item in enumerate(items):
        event = as_event(item, forced, None if seed is None else f"{seed}{index}")
        if isinstance(event, NotAnEvent):
            prepared.reject(index, event)
        elif event.kind not in STORED_TYPES:
            prepared.acknowledged.append({"index": index, "type": event.kind})
        else:
            payload = event.payload
            encoded = dumps(payload)
            problem = over_limits(payload, len(encoded), limits)
            if problem is not None:  # planning it would hold the event loop too long
                prepared.reject(index, problem)
                continue
            key, cost = ordering_key(payload), delivery_cost(payload, destination.config)
            prepared.new_events.append(
                NewEvent(destination.id, event.message_id, key, event.kind, encoded, now, cost)
            )
            prepared.message_ids.append(event.message_id)
    return prepared


async def ingest(
    request: Request, runtime: Runtime, shape: Shape, destination_id: str | None
) -> JsonResponse:
    destination, wire = await authenticated_body(request, runtime, destination_id)
    encoding = content_encoding(request)
    settings = runtime.settings
    max_bytes = settings.max_body_bytes
    limits = EventLimits(settings.max_event_fields, settings.max_event_bytes)
    work_size = len(wire) if encoding == "identity" else INLINE_BYTES + 1
    signed = signed_by_body(request, runtime)
    prepared = await off_loop(
        work_size, lambda: prepare(wire, encoding, shape, destination, max_bytes, limits, signed)
    )
    stored: list[bool] = []
    if prepared.new_events:
        try:
            stored = await runtime.store.enqueue(prepared.new_events)
        except StoreUnavailableError as exc:
            runtime.store_failed(exc)
            log.warning(
                "request refused",
                extra={"path": request.url.path, "status": exc.status, "reason": exc.message},
            )
            return error_response(exc.status, exc.message, headers={"Retry-After": "5"})
        runtime.store_committed()
        runtime.wake_workers()
    _count(runtime, destination.id, prepared, stored)
    if prepared.rejected_count:
        log.info(
            "events rejected",
            extra={
                "path": request.url.path,
                "status": 200,
                "destination": destination.id,
                "reason": prepared.first_reason,
                "count": prepared.rejected_count,
            },
        )
    return JsonResponse(
        {
            "success": True,
            "stored": stored.count(True),
            "duplicates": stored.count(False),
            "messageIds": prepared.message_ids,
            "acknowledged": prepared.acknowledged,
            "rejected": prepared.rejected,
            "rejectedCount": prepared.rejected_count,
        }
    )


def _count(runtime: Runtime, destination_id: str, prepared: Prepared, stored: list[bool]) -> None:
    metrics = runtime.metrics
    fresh = Counter(e.kind for e, new in zip(prepared.new_events, stored, strict=True) if new)
    for kind, count in fresh.items():
        metrics.ingested.labels(destination_id, kind).inc(count)
    if stored.count(False):
        metrics.duplicates.labels(destination_id).inc(stored.count(False))
    for kind, count in Counter(item["type"] for item in prepared.acknowledged).items():
        metrics.ignored.labels(destination_id, kind).inc(count)
    if prepared.rejected_count:
        metrics.rejected.labels(destination_id).inc(prepared.rejected_count)


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "every usable event committed (duplicates acknowledged, stored once); items "
        "that are not events listed in `rejected`; page/screen/alias in `acknowledged`"
    },
    400: _error("unusable request: not JSON, not the route's shape, no events, nested too deep"),
    401: _error("missing or invalid credentials"),
    403: _error("sandbox mode: a simple cross-origin request (see README)"),
    408: _error("request body not received in time"),
    413: _error("body over the size limit (before or after decompression)"),
    415: _error("unsupported Content-Encoding"),
    503: _error("the store cannot commit now (locked, unavailable); retry later"),
    507: _error("the store cannot commit: disk full"),
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


for _shape in SINGLE_SHAPES:
    _verb = "Store" if _shape in STORED_TYPES else "Acknowledge (not stored)"
    _add(f"/v1/{_shape}", _shape, _EVENT_SCHEMA, f"{_verb} one {_shape} event")
_add(
    "/v1/batch",
    "batch",
    {
        "type": "object",
        "required": ["batch"],
        "properties": {"batch": {"type": "array", "items": _EVENT_SCHEMA}},
    },
    "Accept a batch of events (each event on its own)",
)
_add(
    "/webhook",
    "webhook",
    {"oneOf": [_EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA}]},
    "Accept one event or an array (RudderStack / Segment webhooks)",
)
