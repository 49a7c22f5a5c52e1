"""A counted track event's plan (DESIGN §3.7): `plan_count` makes a `CountPlan`. Pure.

The count key is (company Gsid, UTC day of the event's `timestamp`, event name as received): the
day is read here; the company only when the event is delivered (track_company.py), from the
person's last group association, else `context.groupId` through `companyIdentity`. An event
with no `timestamp` (nor `originalTimestamp`) counts on the UTC day it was received. With
`usage.publish`, the plan also carries the Events Framework publish (§3.4), which then needs the
event's eventNameMap/eventVersionMap entries like any track.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination.config import DestinationConfig
from destination.config_sections import TrackRoute, UsageConfig
from destination.delivery.usage_store import UsageKey, utc_day
from destination.event_time import event_time_ms
from destination.events import storable
from destination.gainsight.company_source import CompanySource, company_source
from destination.gainsight.requests import Kind
from destination.gainsight.track_plan import TrackPlan, plan_track
from destination.gainsight.usage_row_events import row_of
from destination.gainsight.usage_rows import UsageTarget


def usage_target(usage: UsageConfig) -> UsageTarget:
    fields = usage.fields
    return UsageTarget(usage.object, fields.company, fields.date, fields.metric, fields.count)


@dataclass(frozen=True, slots=True)
class CountPlan:
    """Count the event once (its messageId) under its company, day and name; maybe publish it too."""

    domain: str
    message_id: str
    metric: str  # the event name, as received
    day: str | None  # the UTC day of its time (None: the day it was received)
    source: CompanySource
    target: UsageTarget
    publish: TrackPlan | None
    row: UsageKey | None = None  # a refused row's event (usage_row_events.py): write that row
    kind: Kind = "track"

    @property
    def diagnostics(self) -> tuple[Any, ...]:
        return self.publish.diagnostics if self.publish is not None else ()


def event_day(event: Mapping[str, Any]) -> str | None:
    """The UTC day (YYYY-MM-DD) of the event's time (event_time.py); None: it has none (it then
    counts on the day it was received)."""
    ms = event_time_ms(event)
    return None if ms is None else utc_day(ms / 1000)


def plan_count(event: Mapping[str, Any], config: DestinationConfig, route: TrackRoute) -> CountPlan:
    assert config.usage is not None
    metric = storable(event["event"])  # a store key too
    publish = plan_track(event, config) if route.publish and row_of(event) is None else None
    return CountPlan(
        domain=config.domain or "",
        message_id=str(event.get("messageId") or ""),  # the dry run's events may have none
        metric=metric,
        day=event_day(event),
        source=company_source(event, config),
        target=usage_target(config.usage),
        publish=publish,
        row=row_of(event),
    )


def describe_count(plan: CountPlan) -> dict[str, Any]:
    """The dry run's `count`: the key the event is counted under, and where the count is written."""
    if plan.source.field is not None:
        company = (
            f"the person's last company, else the Company whose {plan.source.field} = {plan.source.value}"
        )
    else:
        company = "the person's last company (none: counted as unattributed)"
    return {
        "object": plan.target.object,
        "key": {
            plan.target.company: company,
            plan.target.date: plan.day or "the UTC day it is received (the event has no timestamp)",
            plan.target.metric: plan.metric,
        },
        "count": f"{plan.target.count}: +1 once for messageId {plan.message_id} (an absolute count)",
        "published": plan.publish is not None,
    }
