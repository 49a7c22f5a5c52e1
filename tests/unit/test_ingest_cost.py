"""Ingest stores each event with what its delivery will spend of the rate budget (events.cost), by
the destination's routing of track events: the dispatcher sizes its claims by it per class."""

from __future__ import annotations

from typing import Any

from destination.api.ingest import prepare
from destination.config import Destination
from destination.events import EventLimits
from destination.gainsight.plan import delivery_cost
from destination.gainsight.usage_row_events import ROW_MARK
from destination.jsonutil import dumps
from destination.sandbox import SANDBOX_USAGE, sandbox_destination
from tests.e2e.servers import sandbox_config

LIMITS = EventLimits(1_000, 1_000_000)
ROW = {"company": "G1", "day": "2026-12-06", "metric": "Report Exported"}


def costs(destination: Destination, events: list[dict[str, Any]]) -> list[str]:
    wire = dumps({"batch": events})
    prepared = prepare(wire, "identity", "batch", destination, 10_000_000, LIMITS, False)
    return [event.cost for event in prepared.new_events]


def track(name: str) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": name}


EVENTS = [
    {"type": "identify", "userId": "u1", "traits": {"email": "ada@example.com"}},
    {"type": "group", "userId": "u1", "traits": {"name": "Acme"}},
    track("Meeting Booked"),  # an activity
    track("Report Exported"),  # counted
    track("Ticket Closed"),  # published
    {"type": "Track", "userId": "u1"},  # no name: refused when planned, sized as a call
]


def test_activities_spend_timeline_calls_counted_events_none_the_rest_sync_calls() -> None:
    found = costs(sandbox_destination(), EVENTS)
    assert found == ["sync", "sync", "timeline", "none", "sync", "sync"]
    # A usage row's own event (made by the flusher; senders' are refused at ingest) writes its row
    row_event = {**track("Report Exported"), "context": {ROW_MARK: ROW}}
    assert delivery_cost(row_event, sandbox_destination().config) == "sync"


def test_published_activities_and_counted_events_spend_a_sync_call_too() -> None:
    timeline = {
        "author": "csm@acme.com",
        "activities": [{"event": "Meeting Booked", "type": "Meeting", "alsoPublish": True}],
    }
    config = sandbox_config(timeline=timeline, usage={**SANDBOX_USAGE, "publish": True})
    config["eventNameMap"] += [{"from": n, "to": n} for n in ("Meeting Booked", "Report Exported")]
    config["eventVersionMap"] += [{"from": n, "to": "1"} for n in ("Meeting Booked", "Report Exported")]
    destination = Destination.model_validate({"id": "acme", "config": config})
    assert costs(destination, EVENTS) == ["sync", "sync", "both", "sync", "sync", "sync"]
