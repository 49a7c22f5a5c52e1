"""The /status page's usage counts (DESIGN §3.7): today's counts per metric, what is written of
them, the unattributed events, and when a count was last written."""

from __future__ import annotations

from dataclasses import dataclass, replace

from destination.config import Destination
from destination.delivery.usage_store import UNATTRIBUTED, UsageCounts, utc_day


@dataclass(frozen=True)
class MetricToday:
    metric: str
    companies: int  # companies it was counted for today
    count: int  # today's events of this name, attributed to a company
    written: int  # of them, already in Gainsight
    unattributed: int  # counted with no company (never written)


@dataclass(frozen=True)
class UsageToday:
    object: str
    day: str  # the UTC day shown
    metrics: tuple[MetricToday, ...]
    unattributed: int
    held: int  # rows refused by Gainsight (dead letters), not written until replayed
    last_write: float | None  # when a count was last written (None: never)


async def usage_today(store: UsageCounts, destination: Destination, now: float) -> UsageToday | None:
    usage = destination.config.usage
    if usage is None:
        return None
    day = utc_day(now)
    rows = await store.usage_of_day(destination.id, day)
    metrics: dict[str, MetricToday] = {}
    for row in rows:
        seen = metrics.get(row.key.metric) or MetricToday(row.key.metric, 0, 0, 0, 0)
        if row.key.company == UNATTRIBUTED:
            seen = replace(seen, unattributed=seen.unattributed + row.count)
        else:
            count, written = seen.count + row.count, seen.written + row.written
            seen = replace(seen, companies=seen.companies + 1, count=count, written=written)
        metrics[row.key.metric] = seen
    return UsageToday(
        object=usage.object,
        day=day,
        metrics=tuple(metrics[name] for name in sorted(metrics)),
        unattributed=sum(m.unattributed for m in metrics.values()),
        held=sum(1 for row in rows if row.held),
        last_write=await store.last_usage_write(destination.id),
    )
