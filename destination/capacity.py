"""The capacity forecast (DESIGN §6): does a destination's traffic fit the daily budget, when does
its backlog clear (or how fast it grows), when is the daily cap reached, when do queued events
start passing GSD_MAX_AGE_SECONDS, and which events cost the calls. Pure: facts in, JSON out
(capacity_facts.py reads the facts from the store).

The model, per Gainsight tenant (its destinations share one budget, and claims take the oldest
events first whichever destination they belong to):

    a    arrivals a day        = events stored in the last window, scaled to a day
    k    calls per event       = measured on the events that finished lately, per (type, event
                                 name); a call shared by n events counts 1/n for each; an event
                                 name not measured yet costs what its type costs, else 1
    N    calls needed a day    = sum over the tenant's destinations of a * k (a Timeline
                                 activity's call left out when GSD_TIMELINE_COUNTS_TOWARD_DAY
                                 is false: it spends Timeline's own per-minute class only)
    C    calls it may spend    = min(GSD_RATE_LIMIT_PER_DAY, GSD_RATE_LIMIT_PER_MINUTE * 1440)
                                 a day
    fits                       = N <= C (for every destination of the tenant: they share it)
    Q    backlog, in calls     = sum of queued events * k

    N < C: the workers send the backlog at the per-minute limit while the day window has room,
           and what arrives meanwhile too (`drain`, day window by day window): every backlog of
           the tenant is sent then, each shrinking at its average rate (growth negative).
    N >= C: the tenant spends C, shared in proportion to need: a destination delivers a * C / N
           a day, and its backlog grows by a * (1 - C / N) (clears: never, null).

The daily cap: the tenant's calls counted today, spent on at the per-minute limit while a backlog
waits, then at N, reached before the day window ends (UTC midnight) or not at all (null).

Aging out (queued events are served oldest first): an event queued when the wait (backlog ÷ the
destination's events sent a day) is longer than GSD_MAX_AGE_SECONDS passes that age while it
waits. `agingOutAt` is when the first one does: the time the wait reaches that age, plus the age
(a growing backlog); the oldest queued event's receipt plus the age when the wait is that long
already, or that event is that old; null when the wait never gets there. Past that age a queued
event still waits for its turn; any failed attempt then makes it a dead letter at once.

Levers (`lever_for`): what would cut a published track event's calls. Identify and group: null
(person runs and unchanged-skipping already cut them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from destination.delivery.capacity_views import Arrival, Arrivals, CallCost
from destination.delivery.views import iso as _iso

DAY = 86_400.0
Lever = Literal["filter", "usage", "timeline"]
Route = Literal["publish", "timeline", "usage", "timeline+publish", "usage+publish"]
"""Where the configuration sends a track event: published only, or (foundation's track_route) to
Timeline or usage counts, alone or also published."""

TIMELINE_MAX_PER_DAY = 100.0
"""A published track event at most this many times a day is one a CSM can read one by one: its
lever is `timeline`; more often, `usage` (a count per company and day)."""
HORIZON_DAYS = 366
"""A backlog that takes longer than this to clear is reported as not clearing."""
ANONYMOUS_SHARE_FOR_FILTER = 0.5
"""An event sent mostly by people known only by anonymousId has no company for Timeline or usage
counts: its lever is `filter`."""


@dataclass(frozen=True, slots=True)
class Budget:
    """The tenant's budget (GSD_RATE_LIMIT_PER_DAY/_PER_MINUTE, their windows) and GSD_MAX_AGE_SECONDS."""

    per_day: int
    per_minute: int
    max_age_seconds: float
    minute_seconds: float = 60.0
    day_seconds: float = DAY
    timeline_counts_toward_day: bool = True  # GSD_TIMELINE_COUNTS_TOWARD_DAY

    @property
    def fastest_per_day(self) -> float:
        """What the workers spend a day at most under the per-minute limit (while a backlog waits)."""
        return self.per_minute * DAY / self.minute_seconds

    @property
    def spendable_per_day(self) -> float:
        return min(self.per_day * DAY / self.day_seconds, self.fastest_per_day)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the store knows about one destination (capacity_facts.py reads it)."""

    destination: str
    tenant: str  # the Gainsight domain: destinations of one tenant share its budget
    now: float
    window_seconds: float  # arrivals were counted over the last window_seconds
    arrivals: Arrivals
    costs: Sequence[CallCost]
    backlog: int  # queued and leased events
    oldest_queued_at: float | None
    calls_today: int  # the tenant's calls in the current UTC day window
    routes: Mapping[str, Route]  # a track event name's route; absent: published


@dataclass(frozen=True, slots=True)
class EventLoad:
    kind: str
    event: str | None
    per_day: float
    calls_per_event: float
    anonymous_share: float


def event_loads(facts: Facts) -> list[EventLoad]:
    """The destination's arrivals a day by (type, event name), each with its calls per event."""
    sampled = sum(a.events for a in facts.arrivals.sample)
    if not sampled or facts.window_seconds <= 0:
        return []
    scale = facts.arrivals.total / sampled * DAY / facts.window_seconds
    cost = _cost_table(facts.costs)

    def unmeasured(a: Arrival) -> float:
        """A counted event not also published makes no call of its own (its count's row is
        written with up to 49 others, once per flush); another costs what its type costs."""
        if a.kind == "track" and facts.routes.get(a.event or "") == "usage":
            return 0.0
        return cost.get((a.kind, None), 1.0)

    return [
        EventLoad(
            a.kind,
            a.event,
            a.events * scale,
            cost[a.kind, a.event] if (a.kind, a.event) in cost else unmeasured(a),
            a.anonymous / a.events,
        )
        for a in facts.arrivals.sample
        if a.events
    ]


def _cost_table(costs: Sequence[CallCost]) -> dict[tuple[str, str | None], float]:
    """Calls per event by (type, name), and by (type, None) for the type as a whole."""
    table: dict[tuple[str, str | None], float] = {}
    by_kind: dict[str, tuple[int, float]] = {}
    for c in costs:
        if c.events:
            table[c.kind, c.event] = c.calls / c.events
            if c.kind == "track" and not c.calls:
                continue  # counted or filtered: says nothing of what a published track costs
            events, calls = by_kind.get(c.kind, (0, 0.0))
            by_kind[c.kind] = (events + c.events, calls + c.calls)
    for kind, (events, calls) in by_kind.items():
        table.setdefault((kind, None), calls / events)
    return table


def lever_for(load: EventLoad, route: Route) -> Lever | None:
    """What would cut the event's calls (see the module's docstring and the README):
    - nothing costs nothing, and identify/group have no lever: null;
    - counted or on the Timeline and not also published: null (already cut);
    - counted or on the Timeline and also published: that sink, without publishing;
    - published, mostly by anonymous people (no company for either sink): `filter`;
    - published, at most TIMELINE_MAX_PER_DAY a day: `timeline`; more often: `usage`."""
    if load.kind != "track" or load.per_day * load.calls_per_event <= 0:
        return None
    if route in ("timeline", "usage"):
        return None
    if route == "timeline+publish":
        return "timeline"
    if route == "usage+publish":
        return "usage"
    if load.anonymous_share >= ANONYMOUS_SHARE_FOR_FILTER:
        return "filter"
    return "timeline" if load.per_day <= TIMELINE_MAX_PER_DAY else "usage"


@dataclass(frozen=True, slots=True)
class _Need:
    facts: Facts
    loads: list[EventLoad]
    per_day: float  # arrivals a day
    calls: float  # calls needed a day
    calls_per_event: float  # of its arrivals, else measured, else 1


def day_calls_per_event(load: EventLoad, route: Route, budget: Budget) -> float:
    """What one event spends of the daily budget: its calls, less its Timeline activity when
    Timeline calls do not count toward the day (the activity's own per-minute class still
    applies; a company search for it is a sync call and stays)."""
    if budget.timeline_counts_toward_day or not route.startswith("timeline"):
        return load.calls_per_event
    return max(load.calls_per_event - 1.0, 0.0)


def _need(facts: Facts, budget: Budget) -> _Need:
    loads = event_loads(facts)
    per_day = sum(x.per_day for x in loads)
    routes = facts.routes
    calls = sum(
        x.per_day * day_calls_per_event(x, routes.get(x.event or "", "publish"), budget) for x in loads
    )
    if per_day:
        per_event = calls / per_day
    else:
        measured = sum(c.events for c in facts.costs)
        per_event = sum(c.calls for c in facts.costs) / measured if measured else 1.0
    return _Need(facts, loads, per_day, calls, per_event)


def forecast(destinations: Sequence[Facts], budget: Budget) -> list[dict[str, Any]]:
    """The DESIGN §6 answer for each destination, in the order given."""
    needs = [_need(f, budget) for f in destinations]
    tenants: dict[str, list[_Need]] = {}
    for need in needs:
        tenants.setdefault(need.facts.tenant, []).append(need)
    drains = {tenant: _tenant_drain(members, budget) for tenant, members in tenants.items()}
    return [_answer(need, drains[need.facts.tenant], budget) for need in needs]


@dataclass(frozen=True, slots=True)
class _Drain:
    """The tenant's budget against its destinations' needs."""

    needed: float  # calls a day
    spendable: float  # calls a day
    cleared_at: float | None  # when every backlog of the tenant is sent (None: it grows)
    cap_at: float | None  # when today's calls reach the daily limit (None: not today)


def _tenant_drain(members: list[_Need], budget: Budget) -> _Drain:
    needed = sum(n.calls for n in members)
    queued = sum(n.facts.backlog * n.calls_per_event for n in members)
    facts = members[0].facts
    cleared, cap = drain(needed, queued, facts.calls_today, budget, facts.now)
    fits = needed < budget.spendable_per_day or (needed == budget.spendable_per_day and not queued)
    return _Drain(needed, budget.spendable_per_day, cleared if fits else None, cap)


def drain(
    needed: float, queued: float, used_today: int, budget: Budget, now: float
) -> tuple[float | None, float | None]:
    """(when `queued` calls are all sent, when today's calls reach the daily limit), the tenant
    needing `needed` calls a day more: the workers spend at the per-minute limit while a backlog
    waits, else what arrives, and nothing once a day window is spent until the next one.
    None: not within HORIZON_DAYS / not before today's window ends."""
    fastest, need = budget.fastest_per_day / DAY, needed / DAY  # calls a second
    window = budget.day_seconds
    today_ends = day_ends = (math.floor(now / window) + 1) * window
    t, left = now, float(budget.per_day - used_today)
    cleared = now if queued <= 0 else None
    cap = now if left <= 0 else None
    while t < now + HORIZON_DAYS * DAY and (cleared is None or (cap is None and t < today_ends)):
        rate = 0.0 if left <= 0 else fastest if queued > 0 else min(need, fastest)
        to_clear = queued / (rate - need) if queued > 0 and rate > need else math.inf
        to_cap = left / rate if rate > 0 and left > 0 else math.inf
        step = min(day_ends - t, to_clear, to_cap)
        ends_day = step == day_ends - t
        t, left = t + step, left - rate * step
        queued = 0.0 if step == to_clear else max(0.0, queued + (need - rate) * step)
        if cleared is None and step == to_clear:
            cleared = t
        if cap is None and step == to_cap and t < today_ends:
            cap = t
        if ends_day:
            day_ends, left = day_ends + window, float(budget.per_day)
    return cleared, cap


def _answer(need: _Need, tenant: _Drain, budget: Budget) -> dict[str, Any]:
    facts = need.facts
    backlog = facts.backlog
    if tenant.cleared_at is not None:
        clears_days = (tenant.cleared_at - facts.now) / DAY if backlog else 0.0
        growth = -backlog / clears_days if backlog and clears_days else 0.0
        drain_per_day = need.per_day - growth  # its arrivals, and its share of the spare
    else:
        share = min(1.0, tenant.spendable / tenant.needed) if tenant.needed else 0.0
        growth = need.per_day * (1 - share)
        clears_days = math.inf if backlog or growth > 0 else 0.0
        drain_per_day = need.per_day * share
    loads = sorted(need.loads, key=lambda x: (-x.per_day * x.calls_per_event, x.kind, x.event or ""))
    return {
        "destination": facts.destination,
        "arrivalPerMinute": round(need.per_day / 1440, 2),
        "callsPerEvent": round(need.calls_per_event, 3),
        "callsNeededPerDay": round(need.calls),
        "dailyBudget": budget.per_day,
        "fits": tenant.needed <= tenant.spendable,
        "backlogEvents": backlog,
        "backlogClearsInSeconds": None if math.isinf(clears_days) else round(clears_days * DAY),
        "backlogGrowthPerDay": round(growth),
        "dailyCapReachedAt": _iso(tenant.cap_at),
        "oldestQueuedAgeSeconds": (
            None if facts.oldest_queued_at is None else round(max(0.0, facts.now - facts.oldest_queued_at))
        ),
        "agingOutAt": _iso(_aging_out(facts, budget, growth, drain_per_day)),
        "byEvent": [
            {
                "type": x.kind,
                "event": x.event,
                "eventsPerDay": round(x.per_day, 1),
                "callsPerDay": round(x.per_day * x.calls_per_event, 1),
                "lever": lever_for(x, facts.routes.get(x.event or "", "publish")),
            }
            for x in loads
        ],
    }


def _aging_out(facts: Facts, budget: Budget, growth: float, drain: float) -> float | None:
    """See the module's docstring: when queued events start passing GSD_MAX_AGE_SECONDS."""
    max_age, backlog = budget.max_age_seconds, facts.backlog
    if not backlog and growth <= 0:
        return None
    oldest = facts.now if facts.oldest_queued_at is None else facts.oldest_queued_at
    if facts.now - oldest >= max_age or drain <= 0:
        return oldest + max_age
    wait_now = backlog / drain * DAY  # what an event queued now waits
    if wait_now >= max_age:
        return oldest + max_age
    if growth <= 0:
        return None
    reaches = facts.now + (max_age / DAY * drain - backlog) / growth * DAY  # wait = max age
    return reaches + max_age
