"""The Gainsight routes, and the handlers that keep every answer in Gainsight's envelope.

Bodies are read raw and parsed here (not by pydantic) so that invalid JSON gets Gainsight's
envelope, and so the events route can hash exactly what was sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from destination.simulator import envelope
from destination.simulator.activities import save_activity
from destination.simulator.companies import (
    delete_company,
    insert_companies,
    query_companies,
    update_companies,
)
from destination.simulator.endpoints import ENDPOINTS
from destination.simulator.envelope import SimError, parse_json_body, success_response
from destination.simulator.events import receive_event
from destination.simulator.objects import insert_records, query_records, update_records
from destination.simulator.people import upsert_person
from destination.simulator.state import Simulator


def get_simulator(request: Request) -> Simulator:
    return cast(Simulator, request.app.state.simulator)


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]


async def people_upsert(request: Request, sim: SimulatorDep) -> Response:
    """Create or update one person, matched by Email."""
    return success_response(upsert_person(sim, parse_json_body(await request.body())))


async def people_ping() -> Response:
    """Connection check used by iPaaS connectors: any valid access key answers result: true."""
    return success_response(None)


async def company_query(request: Request, sim: SimulatorDep) -> Response:
    """Read Companies: select, where, orderBy, limit, offset."""
    return success_response(query_companies(sim, parse_json_body(await request.body())))


async def company_insert(request: Request, sim: SimulatorDep) -> Response:
    """Insert up to 50 Companies, all or none."""
    return success_response(insert_companies(sim, parse_json_body(await request.body())))


async def company_update(
    request: Request,
    sim: SimulatorDep,
    keys: Annotated[str | None, Query(description="1-3 comma-separated key fields")] = None,
) -> Response:
    """Update the Companies whose key fields match each record, all or none."""
    body = parse_json_body(await request.body())
    return success_response(update_companies(sim, body, keys))


async def company_delete(gsid: str, sim: SimulatorDep) -> Response:
    """Delete one Company by Gsid (its person associations go with it)."""
    return success_response(delete_company(sim, gsid))


async def object_query(object_name: str, request: Request, sim: SimulatorDep) -> Response:
    """Read a custom object's records: select, where, orderBy, limit, offset."""
    return success_response(query_records(sim, object_name, parse_json_body(await request.body())))


async def object_insert(object_name: str, request: Request, sim: SimulatorDep) -> Response:
    """Insert up to 50 records of a custom object, all or none."""
    return success_response(insert_records(sim, object_name, parse_json_body(await request.body())))


async def object_update(
    object_name: str,
    request: Request,
    sim: SimulatorDep,
    keys: Annotated[str | None, Query(description="1-3 comma-separated key fields, AND-combined")] = None,
) -> Response:
    """Update the custom object's records whose key fields match each record, all or none."""
    body = parse_json_body(await request.body())
    return success_response(update_records(sim, object_name, body, keys))


async def events_publish(request: Request, sim: SimulatorDep) -> Response:
    """Publish one event to a registered topic; authenticated by sharedSecret + tenantId."""
    receive_event(sim, request.headers, await request.body())
    return success_response(None)


async def timeline_activity(request: Request, sim: SimulatorDep) -> Response:
    """Save one Timeline activity; its ExternalId must be new to the tenant."""
    return success_response(save_activity(sim, parse_json_body(await request.body())))


_HANDLERS: dict[str, Callable[..., Awaitable[Response]]] = {
    "people.upsert": people_upsert,
    "people.ping": people_ping,
    "company.query": company_query,
    "company.insert": company_insert,
    "company.update": company_update,
    "company.delete": company_delete,
    "object.query": object_query,
    "object.insert": object_insert,
    "object.update": object_update,
    "events.publish": events_publish,
    "timeline.activity": timeline_activity,
}


def gainsight_router() -> APIRouter:
    router = APIRouter(tags=["gainsight"])
    for endpoint in ENDPOINTS:
        router.add_api_route(
            endpoint.path,
            _HANDLERS[endpoint.name],
            methods=[endpoint.method],
            name=endpoint.name,
        )
    return router


async def _sim_error(_: Request, exc: Exception) -> Response:
    return envelope.error_response(cast(SimError, exc))


async def _http_error(_: Request, exc: Exception) -> Response:
    status = cast(HTTPException, exc).status_code
    if status in (404, 405):
        error = SimError(status, envelope.INVALID_PATH, "Invalid API path or method")
    else:
        error = SimError(status, envelope.INVALID_FIELD, str(cast(HTTPException, exc).detail))
    return envelope.error_response(error)


async def _validation_error(_: Request, exc: Exception) -> Response:
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in cast(RequestValidationError, exc).errors()
    )
    return envelope.error_response(SimError(400, envelope.INVALID_FIELD, detail))


async def _unexpected(_: Request, exc: Exception) -> Response:
    return envelope.error_response(envelope.internal_error())


def install_error_handlers(app: FastAPI) -> None:
    """Every error, expected or not, answers with the envelope, never an HTML or text page."""
    app.add_exception_handler(SimError, _sim_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
