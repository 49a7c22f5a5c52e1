"""`POST /v1/transform`: dry run of one event or a batch; the planned requests, nothing sent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from destination.api.auth import authenticated_body
from destination.api.body import content_encoding, decode, off_loop, parse_json
from destination.dryrun import dry_run
from destination.runtime import RuntimeDep

router = APIRouter(tags=["Dry run"])

_EVENTS_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "object", "description": "one event"},
        {"type": "array", "items": {"type": "object"}, "description": "several events"},
        {
            "type": "object",
            "required": ["batch"],
            "properties": {"batch": {"type": "array", "items": {"type": "object"}}},
        },
    ]
}


def _events(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        batch = body.get("batch")
        if batch is None:
            return [body]
        if isinstance(batch, list):
            return batch
        raise HTTPException(400, "batch must be a JSON array of events")
    raise HTTPException(400, "request body must be an event object, an array of events, or {batch: [...]}")


async def _dry_run(request: Request, runtime: RuntimeDep, destination_id: str | None) -> dict[str, Any]:
    destination, wire = await authenticated_body(request, runtime, destination_id)
    encoding = content_encoding(request)
    max_bytes = runtime.settings.max_body_bytes
    raw = await off_loop(
        len(wire) if encoding == "identity" else max_bytes, lambda: decode(wire, encoding, max_bytes)
    )
    events = _events(await off_loop(len(raw), lambda: parse_json(raw)))
    # Planning takes time that grows with the events' fields: a large body is planned off the loop.
    results = await off_loop(len(raw), lambda: dry_run(events, destination.config, runtime.specs))
    return {"destination": destination.id, "results": results}


@router.post(
    "/v1/transform",
    summary="Plan the Gainsight requests for events without sending anything",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _EVENTS_SCHEMA}}}
    },
)
async def transform(request: Request, runtime: RuntimeDep, destination: str | None = None) -> dict[str, Any]:
    """Query parameter `destination` names the destination when several are configured."""
    return await _dry_run(request, runtime, destination)


@router.post(
    "/v1/d/{destination_id}/transform",
    summary="Dry run for a named destination",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _EVENTS_SCHEMA}}}
    },
)
async def transform_for(request: Request, runtime: RuntimeDep, destination_id: str) -> dict[str, Any]:
    return await _dry_run(request, runtime, destination_id)
