"""The plan of one event on the delivery path (the workers and the dry run): plan.py's, except
for the track events that `config.timeline` or `config.usage` claim (DESIGN §3.6, §3.7), which
`track_route` sends to their own sink. The RudderStack transformer routes keep `plan_event`: they
only ever publish (rudder-server delivers what they return).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination.config import DestinationConfig
from destination.gainsight import plan as p
from destination.mapping.spec import Specs

DeliveryPlan = p.Plan
"""Every plan the executor runs: plan.py's, and one per track sink."""

TRACK_PLANS: tuple[type, ...] = (p.TrackPlan,)
"""The plans of track events: each is one call (or none) in its place in the person's order."""


@dataclass(frozen=True, slots=True)
class CompanySource:
    """Where a track event's company may be read when its person has no group association yet:
    `context.groupId` as the value of the `companyIdentity` field (both None without either)."""

    field: str | None = None
    value: str | None = None


def company_source(event: Mapping[str, Any], config: DestinationConfig) -> CompanySource:
    identity = config.company_identity
    context = event.get("context")
    group_id = context.get("groupId") if isinstance(context, dict) else None
    if identity is None or group_id is None or group_id == "" or isinstance(group_id, dict | list | bool):
        return CompanySource()
    return CompanySource(identity.field, str(group_id))


def plan_delivery(event: Mapping[str, Any], config: DestinationConfig, specs: Specs) -> DeliveryPlan:
    """The plan for one event to deliver; EventError / ConfigError when it cannot be planned."""
    return p.plan_event(event, config, specs)
