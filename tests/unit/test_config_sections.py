"""`timeline` and `usage` in a destination's config (DESIGN §3.6, §3.7), and `track_route`."""

from __future__ import annotations

from typing import Any

import pytest

from destination.config import parse_destination_config
from destination.errors import ConfigError

TIMELINE = {
    "author": "integration@acme.com",
    "activities": [
        {"event": "Meeting Booked", "type": "Meeting", "alsoPublish": True},
        {"event": "Renewal Call", "type": "Call"},
    ],
}
FIELDS = {"company": "Company__gc", "date": "UsageDate__gc", "metric": "Metric__gc", "count": "Count__gc"}
USAGE = {"object": "ProductUsage__gc", "fields": FIELDS, "events": ["Report Exported"]}


def config(**sections: Any) -> Any:
    return parse_destination_config({"domain": "acme.gainsightcloud.com", **sections})


def test_each_track_event_goes_to_one_sink() -> None:
    routes = config(timeline=TIMELINE, usage=USAGE)
    meeting, call = routes.track_route("Meeting Booked"), routes.track_route("Renewal Call")
    assert (meeting.sink, meeting.publish, meeting.activity.type) == ("timeline", True, "Meeting")
    assert (call.sink, call.publish) == ("timeline", False)
    assert (routes.track_route("Report Exported").sink, routes.track_route("Report Exported").publish) == (
        "usage",
        False,
    )
    assert routes.track_route("Signed Up").sink == "publish"
    assert routes.track_route("meeting booked").sink == "publish"  # names are exact
    assert config().track_route("Meeting Booked").sink == "publish"


def test_a_star_counts_every_track_that_is_not_a_timeline_activity() -> None:
    routes = config(timeline=TIMELINE, usage={**USAGE, "events": ["*"], "publish": True})
    assert routes.track_route("Meeting Booked").sink == "timeline"
    assert (routes.track_route("Anything").sink, routes.track_route("Anything").publish) == ("usage", True)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"timeline": {**TIMELINE, "author": "integration"}}, "timeline.author"),
        ({"timeline": {**TIMELINE, "activities": [TIMELINE["activities"][0]] * 2}}, "listed twice"),
        ({"timeline": TIMELINE, "usage": {**USAGE, "events": ["Meeting Booked"]}}, "'Meeting Booked'"),
        ({"usage": {**USAGE, "object": "ProductUsage"}}, "usage.object"),
        ({"usage": {**USAGE, "events": []}}, "usage.events"),
        ({"usage": {**USAGE, "events": ["*", "A"]}}, "usage.events"),
        ({"usage": {**USAGE, "fields": {**FIELDS, "count": " "}}}, "usage.fields.count"),
        ({"timeline": {**TIMELINE, "activities": [{"event": "A"}]}}, "activities[0].type: Field required"),
    ],
)
def test_bad_sections_are_named(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(**sections)
    assert message in caught.value.message
