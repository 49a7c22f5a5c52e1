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
from destination.delivery.store_values import Cost
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
    route = _track_route(event, config)
    if route is not None and route.sink == "timeline":
        return plan_activity(event, config, route)
    if route is not None and route.sink == "usage":  # usage counts (DESIGN §3.7; gainsight/usage.py)
        if config.usage is None:  # a refused row's event, replayed once usage is switched off
            raise ConfigError("usage counts are no longer configured: the refused row cannot be written")
        return plan_count(event, config, route)
    return p.plan_event(event, config, specs)  # a track without a usable name is refused there


def delivery_cost(event: Mapping[str, Any], config: DestinationConfig) -> Cost:
    """What delivering the event will spend of the rate budget, by the route plan_delivery
    follows (decided at ingest, stored as events.cost, so that claims are sized per budget class):
    an activity a Timeline call (and a sync one when also published), a counted event none unless
    published (a usage row's own event writes its row: sync), anything else a sync call."""
    route = _track_route(event, config)
    if route is None or route.sink == "publish":
        return "sync"
    if route.sink == "timeline":
        return "both" if route.publish else "timeline"
    return "sync" if route.publish or row_of(event) is not None else "none"


def _track_route(event: Mapping[str, Any], config: DestinationConfig) -> TrackRoute | None:
    """Where a track event with a usable name goes; None for any other event."""
    name = event.get("event") if isinstance(event, dict) else None
    if isinstance(name, str) and name and p.message_type(event) == "track":
        if row_of(event) is not None:  # a refused usage row, whatever usage.events says now
            return ROW_ROUTE
        return config.track_route(name)
    return None
