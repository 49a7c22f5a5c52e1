"""GET /admin/capacity: does each destination's traffic fit its tenant's daily budget (DESIGN §6).
The forecast is capacity.py's; its facts are read from the store (capacity_facts.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from destination.api.admin_auth import AdminDep
from destination.capacity_facts import capacity, configs_of
from destination.runtime import RuntimeDep

router = APIRouter(tags=["Admin"])


class EventCapacity(BaseModel):
    type: str = Field(description="identify, group or track")
    event: str | None = Field(description="the track event's name (null: not a track)")
    eventsPerDay: float = Field(description="arrivals of the last hour, scaled to a day")
    callsPerDay: float = Field(description="eventsPerDay times the calls such an event was measured to cost")
    lever: Literal["filter", "usage", "timeline"] | None = Field(
        description="what would cut these calls (README: Capacity); null: nothing to cut"
    )


class DestinationCapacity(BaseModel):
    destination: str
    arrivalPerMinute: float = Field(description="events stored a minute over the last hour")
    callsPerEvent: float = Field(description="Gainsight calls an arriving event costs, as measured")
    callsNeededPerDay: int = Field(description="calls a day today's traffic needs")
    dailyBudget: int = Field(description="GSD_RATE_LIMIT_PER_DAY: the tenant's, shared by its destinations")
    fits: bool = Field(description="the tenant's destinations together need no more than its budget")
    backlogEvents: int = Field(description="queued and leased events")
    backlogClearsInSeconds: int | None = Field(description="null: the backlog grows")
    backlogGrowthPerDay: int = Field(description="events a day; negative while it shrinks")
    dailyCapReachedAt: str | None = Field(description="ISO 8601 UTC; null: not before the UTC day ends")
    oldestQueuedAgeSeconds: int | None = Field(description="null: nothing queued")
    agingOutAt: str | None = Field(
        description="when queued events start passing GSD_MAX_AGE_SECONDS; null: never at this rate"
    )
    byEvent: list[EventCapacity] = Field(description="by calls a day, most first")


class CapacityAnswer(BaseModel):
    destinations: list[DestinationCapacity]


@router.get(
    "/admin/capacity",
    summary="Capacity forecast of every destination: fits the daily budget? backlog, levers",
    response_model=CapacityAnswer,
)
async def capacity_of_all(_: AdminDep, runtime: RuntimeDep) -> dict[str, Any]:
    return {"destinations": await capacity(runtime.store, configs_of(runtime.destinations), runtime.settings)}


@router.get(
    "/admin/capacity/{destination_id}",
    summary="Capacity forecast of one destination",
    response_model=DestinationCapacity,
    responses={404: {"description": "no such destination"}},
)
async def capacity_of_one(_: AdminDep, runtime: RuntimeDep, destination_id: str) -> dict[str, Any]:
    if destination_id not in runtime.destinations:
        raise HTTPException(404, f"no destination with id {destination_id!r}")
    # Forecast with every destination: those of the same tenant share its budget.
    for answer in await capacity(runtime.store, configs_of(runtime.destinations), runtime.settings):
        if answer["destination"] == destination_id:
            return answer
    raise AssertionError("every configured destination has an answer")
