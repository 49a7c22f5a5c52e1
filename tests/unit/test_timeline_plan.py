"""track → Timeline activity, the plan (DESIGN §3.6): the record's fields, Notes, ActivityDate,
alsoPublish, what cannot be planned, and how a duplicate ExternalId refusal is recognised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from destination.errors import ConfigError, EventError
from destination.event_time import event_time_ms
from destination.gainsight.client import Credentials, shown_headers
from destination.gainsight.outcomes import Answer
from destination.gainsight.plan import plan_delivery
from destination.gainsight.timeline import (
    ActivityPlan,
    notes,
    refused_as_duplicate,
    timeline_activity,
)
from destination.gainsight.track_plan import TrackPlan
from destination.mapping.spec import Specs
from tests.conftest import DOMAIN, make_config

TIMELINE = {
    "author": "integration@acme.com",
    "activities": [
        {"event": "Meeting Booked", "type": "Meeting"},
        {"event": "Ticket Closed", "type": "Update", "alsoPublish": True},
    ],
}
MEETING = {
    "type": "track",
    "event": "Meeting Booked",
    "messageId": "msg-123",
    "userId": "u1",
    "timestamp": "2025-12-05T10:00:00.000Z",
    "properties": {"source": "calendly", "attendees": 3},
}


def plan(specs: Specs, event: dict[str, Any] | None = None, **config: Any) -> Any:
    settings = make_config(**{"timeline": TIMELINE, **config})
    return plan_delivery({**MEETING, **(event or {})}, settings, specs)


def test_the_record_holds_every_field_but_the_company(specs: Specs) -> None:
    found = plan(specs)
    assert isinstance(found, ActivityPlan)
    assert dict(found.record) == {
        "ExternalId": "msg-123",
        "ContextName": "Company",
        "TypeName": "Meeting",
        "Subject": "Meeting Booked",
        "Notes": "attendees: 3\nsource: calendly",
        "ActivityDate": 1_764_928_800_000,
        "Author": "integration@acme.com",
    }
    assert found.publish is None and found.domain == DOMAIN


def test_the_request_is_one_record_with_the_company_gsid(specs: Specs) -> None:
    request = plan(specs).request("1P02ACME", None)
    assert (request.step, request.method, request.endpoint) == (
        "timeline activity",
        "POST",
        f"https://{DOMAIN}/v1/ant/es/activity",
    )
    assert request.body["lookups"] == {}
    [record] = request.body["records"]
    assert record["GsCompanyId"] == "1P02ACME" and record["ExternalId"] == "msg-123"
    # Authenticated by the access key, masked wherever shown.
    assert shown_headers(request, Credentials("acme", "ak-123")) == {
        "Content-Type": "application/json",
        "Accesskey": "***",
    }


def test_an_integer_message_id_is_the_external_id_as_text(specs: Specs) -> None:
    assert plan(specs, {"messageId": 42}).record["ExternalId"] == "42"


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"b": "two", "a": 1, "C": True}, "C: true\na: 1\nb: two"),  # sorted by code point
        ({"obj": {"z": 1, "y": [1, "x"]}}, 'obj: {"z":1,"y":[1,"x"]}'),  # compact, order kept
        ({"list": [{"a": None}], "n": None}, 'list: [{"a":null}]\nn: null'),
        ({"whole": 7.0, "part": 2.5}, "part: 2.5\nwhole: 7"),  # as JSON.stringify writes them
        ({"é": "naïve ✓", "empty": ""}, "empty: \né: naïve ✓"),
    ],
)
def test_notes_are_sorted_key_value_lines(properties: dict[str, Any], expected: str) -> None:
    assert notes(properties) == expected


def test_an_event_without_properties_has_no_notes(specs: Specs) -> None:
    assert "Notes" not in plan(specs, {"properties": {}}).record
    assert "Notes" not in plan(specs, {"properties": None}).record


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"timestamp": "2025-12-05T10:00:00Z"}, 1_764_928_800_000),
        ({"timestamp": "2025-12-05T11:00:00.250+01:00"}, 1_764_928_800_250),
        ({"timestamp": "2025-12-05T10:00:00"}, 1_764_928_800_000),  # no offset: UTC
        ({"timestamp": 1_764_928_800_123}, 1_764_928_800_123),  # epoch ms as is
        ({"originalTimestamp": "2025-12-05T10:00:00Z"}, 1_764_928_800_000),
        ({"timestamp": "", "originalTimestamp": "2025-12-05T10:00:00Z"}, 1_764_928_800_000),
        (
            {"timestamp": "2025-12-05T10:00:00Z", "originalTimestamp": "2020-01-01T00:00:00Z"},
            1_764_928_800_000,
        ),
    ],
)
def test_activity_date_is_the_event_timestamp_in_epoch_ms(times: dict[str, Any], expected: int) -> None:
    assert event_time_ms(times) == expected


@pytest.mark.parametrize(
    ("times", "named"),
    [
        ({"timestamp": "yesterday"}, "timestamp must be an ISO 8601 time"),
        ({"timestamp": True}, "timestamp must be an ISO 8601 time or epoch milliseconds"),
        ({"originalTimestamp": [1]}, "originalTimestamp must be"),
    ],
)
def test_an_event_without_a_usable_timestamp_is_refused_naming_it(times: dict[str, Any], named: str) -> None:
    with pytest.raises(EventError, match=named):
        event_time_ms(times)


@pytest.mark.parametrize("message_id", [None, "", True, 1.5])
def test_an_event_without_a_message_id_is_rejected_it_is_the_external_id(
    specs: Specs, message_id: Any
) -> None:
    event = {k: v for k, v in MEETING.items() if k != "messageId"}
    if message_id is not None:
        event["messageId"] = message_id
    with pytest.raises(EventError, match="messageId is required for a Timeline activity"):
        plan_delivery(event, make_config(timeline=TIMELINE), specs)


def test_properties_that_are_not_an_object_are_rejected(specs: Specs) -> None:
    with pytest.raises(EventError, match="properties must be a JSON object, got list"):
        plan(specs, {"properties": [1, 2]})


def test_also_publish_carries_the_events_framework_publish(specs: Specs) -> None:
    found = plan(specs, {"event": "Ticket Closed"})
    assert isinstance(found, ActivityPlan) and isinstance(found.publish, TrackPlan)
    assert found.record["TypeName"] == "Update"
    assert found.publish.request.headers["eventName"] == "ticket_closed"
    assert found.publish.request.signing is not None  # signed as any publish, jti = messageId
    assert found.publish.request.signing.jti == "msg-123"


def test_also_publish_without_event_maps_is_a_configuration_error_naming_the_event(specs: Specs) -> None:
    timeline = {
        **TIMELINE,
        "activities": [{"event": "Meeting Booked", "type": "Meeting", "alsoPublish": True}],
    }
    with pytest.raises(ConfigError, match=r"alsoPublish.*Meeting Booked"):
        plan(specs, timeline=timeline)


def test_timeline_activities_need_the_access_key(specs: Specs) -> None:
    with pytest.raises(ConfigError, match="accessKey is required for Timeline activities"):
        plan(specs, accessKey=None)


def test_a_track_not_allow_listed_is_still_published(specs: Specs) -> None:
    found = plan(
        specs, {"event": "Ticket Closed"}, timeline={**TIMELINE, "activities": TIMELINE["activities"][:1]}
    )
    assert isinstance(found, TrackPlan)


def test_the_builder_makes_one_record_requests() -> None:
    request = timeline_activity("t.gainsightcloud.com", {"ExternalId": "x"})
    assert request.body == {"records": [{"ExternalId": "x"}], "lookups": {}}
    assert request.path == "/v1/ant/es/activity"


def envelope(status: int | None, code: str | None, desc: str | None) -> Answer:
    return Answer(status, {"result": False, "errorCode": code, "errorDesc": desc})


@pytest.mark.parametrize(
    ("answer", "duplicate"),
    [
        (
            envelope(
                400, "GSTL_DUPLICATE_EXTERNAL_ID", "An activity with ExternalId 'msg-123' already exists"
            ),
            True,
        ),
        (envelope(409, "X", "Duplicate ExternalId msg-123"), True),
        (envelope(400, None, "ExternalId msg-123 must be unique"), True),
        (envelope(400, "X", "An activity with ExternalId 'msg-999' already exists"), False),  # another id
        (envelope(400, "X", "ExternalId msg-1234 already exists"), False),  # one that contains it
        (envelope(400, "X", "ExternalId xmsg-123 already exists"), False),
        (envelope(400, "X", "Status__gc is required for msg-123"), False),  # not about duplicates
        (envelope(429, "GU_2400", "duplicate msg-123"), False),
        (envelope(500, "GU_1101", "duplicate msg-123"), False),
        (envelope(200, None, None), False),
        (Answer(None, transport_error="timed out"), False),
    ],
)
def test_a_duplicate_external_id_refusal_is_recognised_by_its_text(answer: Answer, duplicate: bool) -> None:
    assert refused_as_duplicate(answer, "msg-123") is duplicate


@pytest.mark.parametrize("external_id", ["a\\b", 'say "hi"', "line\nbreak", "ünï"])
def test_a_duplicate_is_recognised_whether_its_id_is_quoted_as_sent_or_escaped(external_id: str) -> None:
    for shown in (external_id, repr(external_id)[1:-1], json.dumps(external_id)[1:-1]):
        answer = envelope(400, "GSTL_DUPLICATE_EXTERNAL_ID", f"ExternalId '{shown}' already exists")
        assert refused_as_duplicate(answer, external_id)


def test_an_event_without_a_time_is_dated_when_it_was_received(specs: Specs) -> None:
    found = plan(specs, {"timestamp": None})
    assert isinstance(found, ActivityPlan) and found.record["ActivityDate"] is None
    assert found.request("G1", 1_764_928_800.25).body["records"][0]["ActivityDate"] == 1_764_928_800_250
    assert found.request("G1", None).body["records"][0]["ActivityDate"] == "when received"  # the dry run


@pytest.mark.parametrize("value", [-1, 253_402_300_800_000, 2**63])
def test_epoch_ms_outside_what_a_date_holds_is_refused(value: int) -> None:
    with pytest.raises(EventError, match="epoch milliseconds from 1970 to 9999"):
        event_time_ms({"timestamp": value})
