"""The simulator's own routes under `/__sim/`: inspect what Gainsight received, steer faults, reset.

Not Gainsight's API: plain JSON, no access key, not rate-limited, not logged, never faulted.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from destination.jsonutil import dumps
from destination.simulator import envelope
from destination.simulator.envelope import SimError, parse_json_body
from destination.simulator.routes import SimulatorDep

router = APIRouter(prefix="/__sim", tags=["simulator"])


def _json(content: Any) -> Response:
    return Response(dumps(content), media_type="application/json")


@router.get("/people")
async def people(sim: SimulatorDep) -> Response:
    """People as stored, each with `companies` (its Company associations)."""
    return _json(sim.people_view())


@router.get("/companies")
async def companies(sim: SimulatorDep) -> Response:
    return _json(sim.companies_view())


@router.get("/objects/{object_name}")
async def objects(object_name: str, sim: SimulatorDep) -> Response:
    """A custom object's records as stored (e.g. the usage counts in ProductUsage__gc)."""
    rows = sim.objects_view(object_name)
    if rows is None:
        raise SimError(404, envelope.INVALID_PATH, f"No object named {object_name}")
    return _json(rows)


@router.get("/associations")
async def associations(sim: SimulatorDep) -> Response:
    """Company Person links: Person_ID, Email, Company_ID, CompanyName, attributes."""
    return _json(sim.associations_view())


@router.get("/events")
async def events(sim: SimulatorDep) -> Response:
    """Events received: routing headers, other headers minus secrets, body, contractId."""
    return _json(sim.events_view())


@router.get("/activities")
async def activities(sim: SimulatorDep) -> Response:
    """Timeline activities saved, each with its Gsid and when it was received."""
    return _json(sim.activities_view())


@router.get("/requests")
async def requests(sim: SimulatorDep) -> Response:
    """Request log: method, path, query, endpoint, status, outcome, time. Never headers or bodies."""
    return _json(sim.requests_view())


@router.get("/counters")
async def counters(sim: SimulatorDep) -> Response:
    return _json(sim.counters_view())


@router.get("/faults")
async def get_faults(sim: SimulatorDep) -> Response:
    """Faults armed now (counts go down as calls consume them)."""
    with sim.lock:
        return _json(sim.faults.config.model_dump())


@router.post("/faults")
async def set_faults(request: Request, sim: SimulatorDep) -> Response:
    """Set some fault fields, e.g. {"drop_next": 2, "drop_scope": "events"}; others stay."""
    changes = parse_json_body(await request.body())
    if not isinstance(changes, dict):
        raise SimError(400, envelope.INVALID_FIELD, "The body must be a JSON object of fault fields")
    with sim.lock:
        try:
            updated = sim.faults.update(changes)
        except ValidationError as exc:
            raise SimError(400, envelope.INVALID_FIELD, str(exc)) from None
        return _json(updated.model_dump())


@router.delete("/faults")
async def clear_faults(sim: SimulatorDep) -> Response:
    with sim.lock:
        return _json(sim.faults.clear().model_dump())


@router.post("/reset")
async def reset(sim: SimulatorDep) -> Response:
    """Forget all records, events, activities, requests, counters, budget and seen jtis; faults
    as configured."""
    sim.reset()
    return _json({"reset": True})
