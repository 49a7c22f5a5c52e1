"""What the capacity forecast reads besides the store: each track name's route (its lever)."""

from __future__ import annotations

from destination.capacity_facts import routes_of
from destination.sandbox import SANDBOX_USAGE
from tests.conftest import make_config

USAGE = {k: v for k, v in SANDBOX_USAGE.items() if k != "events"}


def test_each_track_name_has_the_route_the_configuration_gives_it() -> None:
    config = make_config(
        timeline={
            "author": "csm@acme.com",
            "activities": [
                {"event": "Meeting Booked", "type": "Meeting"},
                {"event": "Renewal Signed", "type": "Update", "alsoPublish": True},
            ],
        },
        usage={**USAGE, "events": ["Report Exported"]},
    )
    names = ["Meeting Booked", "Renewal Signed", "Report Exported", "Ticket Closed"]
    assert routes_of(config, names) == {
        "Meeting Booked": "timeline",
        "Renewal Signed": "timeline+publish",
        "Report Exported": "usage",
        "Ticket Closed": "publish",
    }
    published_too = make_config(usage={**USAGE, "events": ["*"], "publish": True})
    assert routes_of(published_too, ["Anything"]) == {"Anything": "usage+publish"}
