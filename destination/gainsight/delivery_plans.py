"""The plan of one event on the delivery path (the workers and the dry run): plan.py's, except
for the track events that `config.timeline` or `config.usage` claim (DESIGN §3.6, §3.7), which
`track_route` sends to their own sink. The RudderStack transformer routes keep `plan_event`: they
only ever publish (rudder-server delivers what they return).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destination.config import DestinationConfig
from destination.config_sections import TrackRoute
from destination.errors import ConfigError
from destination.gainsight import plan as p
from destination.gainsight.timeline import ActivityPlan, plan_activity
from destination.gainsight.usage import CountPlan, plan_count
from destination.gainsight.usage_row_events import row_of
from destination.mapping.spec import Specs

DeliveryPlan = p.Plan | ActivityPlan | CountPlan
"""Every plan the executor runs: plan.py's, and one per track sink."""

TRACK_PLANS: tuple[type, ...] = (p.TrackPlan, ActivityPlan, CountPlan)
"""The plans of track events: each is one call (or none) in its place in the person's order."""

ROW_ROUTE = TrackRoute("usage", publish=False)  # a refused usage row's event: written, never published


def plan_delivery(event: Mapping[str, Any], config: DestinationConfig, specs: Specs) -> DeliveryPlan:
    """The plan for one event to deliver; EventError / ConfigError when it cannot be planned."""
    name = event.get("event") if isinstance(event, dict) else None
    if isinstance(name, str) and name and p.message_type(event) == "track":
        if row_of(event) is not None:  # a refused usage row, whatever usage.events says now
            if config.usage is None:
                raise ConfigError("usage counts are no longer configured: the refused row cannot be written")
            return plan_count(event, config, ROW_ROUTE)
        route = config.track_route(name)
        if route.sink == "timeline":
            return plan_activity(event, config, route)
        if route.sink == "usage":  # usage counts (DESIGN §3.7; gainsight/usage.py)
            return plan_count(event, config, route)
    return p.plan_event(event, config, specs)  # a track without a usable name is refused there
