"""The /status page's capacity section (DESIGN §6, §9): the forecast of each destination and its
three charts (charts.py): the tenant's calls a minute over the last hour against the per-minute
budget, the destination's events finished an hour over the last day by outcome, and its backlog
over the last day with the forecast's projection over the next."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from destination.capacity_facts import HOUR, History, capacity, configs_of, history
from destination.charts import OTHER_COLOUR, OUTCOME_COLOURS, Bar, bars, line
from destination.config import Destination
from destination.delivery.store import Store
from destination.settings import Settings

PROJECTED_HOURS = 24
HOURS_SHOWN = 24  # finished an hour over the last day (capacity_facts.history's buckets)
BY_EVENT_SHOWN = 10  # the events that cost the most calls, listed on the page


@dataclass(frozen=True, slots=True)
class CapacitySection:
    forecast: dict[str, Any]  # the GET /admin/capacity answer
    calls_chart: Markup
    finished_chart: Markup
    backlog_chart: Markup

    @property
    def by_event(self) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = self.forecast["byEvent"][:BY_EVENT_SHOWN]
        return shown


async def capacity_sections(
    store: Store, destinations: Mapping[str, Destination], settings: Settings, now: float
) -> dict[str, CapacitySection]:
    answers = await capacity(store, configs_of(destinations), settings, now)
    found = {}
    for answer in answers:
        destination = destinations[answer["destination"]]
        past = await history(store, destination, settings, now)
        found[destination.id] = CapacitySection(
            answer,
            calls_chart(destination.id, past, now),
            finished_chart(destination.id, past),
            backlog_chart(destination.id, answer, past, now),
        )
    return found


def calls_chart(destination_id: str, past: History, now: float) -> Markup:
    minute = past.minute_seconds
    count = math.ceil(HOUR / minute)
    first = math.floor(now / minute) * minute - (count - 1) * minute
    spent = {round(start): calls for start, calls in past.calls_by_minute.items()}
    columns = [
        Bar((("calls", float(spent.get(round(first + i * minute), 0)), "#3182ce"),)) for i in range(count)
    ]
    total, peak = sum(c.total for c in columns), max(c.total for c in columns)
    return bars(
        f"{destination_id}-calls",
        f"Gainsight calls a minute over the last hour (this destination's tenant), against the "
        f"budget of {past.per_minute_limit} a minute",
        f"{total:.0f} calls in the last hour; at most {peak:.0f} in one minute; "
        f"the budget allows {past.per_minute_limit} a minute.",
        columns,
        limit=float(past.per_minute_limit),
        limit_label=f"budget {past.per_minute_limit}/min",
        span=("an hour ago", "now"),
    )


def finished_chart(destination_id: str, past: History) -> Markup:
    states = sorted({state for _, state in past.finished_by_hour}, key=_outcome_order)
    columns = [
        Bar(
            tuple(
                (
                    state,
                    float(past.finished_by_hour.get((hour, state), 0)),
                    OUTCOME_COLOURS.get(state, OTHER_COLOUR),
                )
                for state in states
            )
        )
        for hour in range(HOURS_SHOWN)
    ]
    totals = {s: sum(n for (_, state), n in past.finished_by_hour.items() if state == s) for s in states}
    said = ", ".join(f"{n} {s}" for s, n in totals.items()) or "none"
    return bars(
        f"{destination_id}-finished",
        "Events finished an hour over the last day, by outcome",
        f"Finished in the last day: {said}.",
        columns,
        span=("a day ago", "now"),
    )


def backlog_chart(destination_id: str, forecast: Mapping[str, Any], past: History, now: float) -> Markup:
    """The last day (from the backlog now, the events stored and finished since each hour) and the
    forecast's next day, on one line: now in the middle."""
    backlog = float(forecast["backlogEvents"])
    clears, growth = forecast["backlogClearsInSeconds"], float(forecast["backlogGrowthPerDay"])
    window = 2 * PROJECTED_HOURS * HOUR
    history = [(0.5 - (now - at) / window, value) for at, value in backlog_history(backlog, past, now)]
    future = [
        (0.5 + h / (2 * PROJECTED_HOURS), projected(backlog, clears, growth, h * HOUR))
        for h in range(PROJECTED_HOURS + 1)
    ]
    if clears is None:
        outlook = f"it grows by {growth:,.0f} a day: {future[-1][1]:,.0f} in {PROJECTED_HOURS} hours"
    elif backlog:
        outlook = f"it clears in {duration(clears)}"
    else:
        outlook = "nothing waits"
    most = max((value for _, value in history), default=0.0)
    return line(
        f"{destination_id}-backlog",
        f"Backlog over the last {PROJECTED_HOURS} hours and projected over the next {PROJECTED_HOURS}",
        f"{backlog:,.0f} events queued now; {outlook}. At most {most:,.0f} queued in the last "
        f"{PROJECTED_HOURS} hours (from the events stored and finished since).",
        history,
        future,
        span=(f"{PROJECTED_HOURS} h ago", f"in {PROJECTED_HOURS} h"),
    )


def backlog_history(backlog: float, past: History, now: float) -> list[tuple[float, float]]:
    """(time, events queued) at the start of each hour bucket and now: the backlog now, less the
    events stored since, plus those finished since (a replay or purge since makes it approximate)."""
    finished: dict[int, int] = {}
    for (bucket, _), n in past.finished_by_hour.items():
        finished[bucket] = finished.get(bucket, 0) + n
    points, queued = [(now, backlog)], backlog
    for bucket in reversed(range(HOURS_SHOWN)):
        queued += finished.get(bucket, 0) - past.arrivals_by_hour.get(bucket, 0)
        points.append((past.hour_start + bucket * HOUR, max(0.0, queued)))
    return points[::-1]


def projected(backlog: float, clears: int | None, growth: float, seconds: float) -> float:
    """The backlog `seconds` from now: down to nothing at `clears`, else growing by `growth` a day."""
    if clears is not None:
        return 0.0 if seconds >= clears else backlog * (1 - seconds / clears) if clears else 0.0
    return max(0.0, backlog + growth * seconds / 86_400.0)


def duration(seconds: float | None) -> str:
    """2 d 3 h, 3 h 20 min, 12 min, 40 s: for people."""
    if seconds is None:
        return "never"
    seconds = round(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def _outcome_order(state: str) -> tuple[int, str]:
    order = list(OUTCOME_COLOURS)
    return (order.index(state) if state in order else len(order), state)
