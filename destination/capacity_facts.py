"""Reads the capacity forecast's facts from the store (capacity.py computes the forecast), and
what the /status charts draw. Every read is one bounded query (delivery/capacity_views.py)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination.capacity import Budget, Facts, Route, forecast
from destination.config import Destination, DestinationConfig
from destination.delivery.store import Store
from destination.settings import Settings

ARRIVAL_WINDOW_SECONDS = 3600.0
"""Arrivals a day are those of the last hour, scaled: recent enough to show a change of traffic."""
COST_WINDOW_SECONDS = 86_400.0
"""Calls per event are measured on the events finished in the last day (the newest FINISHED_READ)."""
ARRIVALS_READ = 2_000
"""The mix of arrivals (by type and event name) is read from at most this many, the newest."""
FINISHED_READ = 5_000
"""Calls per event are measured on at most this many finished events, the newest."""
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class History:
    """What the /status charts draw for one destination (charts.py)."""

    minute_seconds: float
    calls_by_minute: dict[float, int]  # the tenant's calls, by minute window start, the last hour
    per_minute_limit: int
    hour_start: float  # the start of the first hour bucket
    finished_by_hour: dict[tuple[int, str], int]  # (hour bucket, state) -> events
    arrivals_by_hour: dict[int, int]  # hour bucket -> events stored


def budget_of(settings: Settings) -> Budget:
    return Budget(
        settings.rate_limit_per_day,
        settings.rate_limit_per_minute,
        settings.max_age_seconds,
        settings.rate_minute_seconds,
        settings.rate_day_seconds,
        settings.timeline_counts_toward_day,
    )


def routes_of(config: DestinationConfig, names: list[str]) -> dict[str, Route]:
    """Where the configuration sends each of these track event names (config.track_route)."""
    found: dict[str, Route] = {}
    for name in names:
        route = config.track_route(name)
        if route.sink == "publish" or not route.publish:
            found[name] = route.sink
        else:
            found[name] = "timeline+publish" if route.sink == "timeline" else "usage+publish"
    return found


async def read_facts(
    store: Store,
    destination_id: str,
    config: DestinationConfig,
    budget: Budget,
    now: float,
    queued: Mapping[str, int],
) -> Facts:
    """`queued`: the destination's events by state (counts_by_destination)."""
    tenant = config.domain or ""
    arrivals = await store.arrivals(destination_id, now - ARRIVAL_WINDOW_SECONDS, ARRIVALS_READ)
    costs = await store.call_costs(destination_id, now - COST_WINDOW_SECONDS, FINISHED_READ)
    day_start = math.floor(now / budget.day_seconds) * budget.day_seconds
    used = await store.budget_used(tenant, [("day", day_start)])
    names = sorted({a.event for a in arrivals.sample if a.kind == "track" and a.event is not None})
    return Facts(
        destination=destination_id,
        tenant=tenant,
        now=now,
        window_seconds=ARRIVAL_WINDOW_SECONDS,
        arrivals=arrivals,
        costs=costs,
        backlog=queued.get("queued", 0) + queued.get("leased", 0),
        oldest_queued_at=await store.oldest_unfinished(destination_id),
        calls_today=used.get("day", 0),
        routes=routes_of(config, names),
    )


async def capacity(
    store: Store,
    configs: Mapping[str, DestinationConfig],
    settings: Settings,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The DESIGN §6 answer for every destination (its dashboard settings by id), by id."""
    now = time.time() if now is None else now
    budget = budget_of(settings)
    queued = await store.counts_by_destination()
    facts = [await read_facts(store, d, configs[d], budget, now, queued.get(d, {})) for d in sorted(configs)]
    return forecast(facts, budget)


async def history(store: Store, destination: Destination, settings: Settings, now: float) -> History:
    """The tenant's calls a minute over the last hour; the destination's events stored, and
    finished by state, an hour over the last day."""
    minute = settings.rate_minute_seconds
    first_minute = math.floor(now / minute) * minute - (math.ceil(HOUR / minute) - 1) * minute
    first_hour = math.floor(now / HOUR) * HOUR - 23 * HOUR
    return History(
        minute_seconds=minute,
        calls_by_minute=await store.calls_history(destination.config.domain or "", "minute", first_minute),
        per_minute_limit=settings.rate_limit_per_minute,
        hour_start=first_hour,
        finished_by_hour=await store.finished_histogram(destination.id, first_hour, HOUR),
        arrivals_by_hour=await store.arrival_histogram(destination.id, first_hour, HOUR),
    )


def configs_of(destinations: Mapping[str, Destination]) -> dict[str, DestinationConfig]:
    return {destination_id: d.config for destination_id, d in destinations.items()}
