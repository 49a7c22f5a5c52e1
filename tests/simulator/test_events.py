"""Events publish: required headers, publisher credentials, topic/event registry, JSON object body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from destination.simulator import EventDef, Simulator, SimulatorConfig
from tests.simulator.helpers import EVENTS, event_headers, sim_client


def test_registered_event_is_accepted_and_recorded(client: TestClient, sim: Simulator) -> None:
    headers = {**event_headers(), "contractId": "C-7", "X-Custom": "kept"}
    response = client.post(EVENTS, headers=headers, json={"ticketId": "T-42", "status": "resolved"})
    assert response.status_code == 200 and response.json()["result"] is True
    [event] = sim.events_view()
    assert (event["topicName"], event["eventName"], event["eventVersion"]) == (
        "Sandbox",
        "ticket_closed",
        "1.0",
    )
    assert event["tenantId"] == "sandbox-tenant" and event["contractId"] == "C-7"
    assert event["body"] == {"ticketId": "T-42", "status": "resolved"}
    assert event["headers"]["x-custom"] == "kept" and event["signed"] is False


@pytest.mark.parametrize("missing", ["sharedSecret", "tenantId", "eventName", "eventVersion", "topicName"])
def test_each_required_header_is_named_when_missing(client: TestClient, sim: Simulator, missing: str) -> None:
    response = client.post(EVENTS, headers=event_headers(**{missing: None}), json={"a": 1})
    assert response.status_code == 400
    assert response.json()["errorCode"] == "GSEVT_HEADER_MISSING"
    assert missing in response.json()["errorDesc"]
    assert not sim.events


def test_all_missing_headers_are_named_at_once(client: TestClient) -> None:
    response = client.post(EVENTS, headers={}, json={"a": 1})
    desc = response.json()["errorDesc"]
    assert all(
        name in desc for name in ("sharedSecret", "tenantId", "eventName", "eventVersion", "topicName")
    )


def test_topic_name_switch_makes_the_header_optional() -> None:
    with sim_client(SimulatorConfig.sandbox(require_topic_name=False)) as client:
        ok = client.post(EVENTS, headers=event_headers(topicName=None), json={"a": 1})
        unknown = client.post(EVENTS, headers=event_headers(topicName=None, eventName="nope"), json={"a": 1})
        events = client.get("/__sim/events").json()
    assert ok.status_code == 200 and events[0]["topicName"] is None
    assert unknown.status_code == 400 and unknown.json()["errorCode"] == "GSEVT_EVENT_UNKNOWN"


@pytest.mark.parametrize(
    ("override", "code", "named"),
    [
        ({"sharedSecret": "wrong"}, "GSOBJ_1024", "sharedSecret"),
        ({"tenantId": "other-tenant"}, "GSOBJ_1024", "other-tenant"),
        ({"topicName": "Billing"}, "GSEVT_TOPIC_UNKNOWN", "Billing"),
        ({"eventName": "ticket_opened"}, "GSEVT_EVENT_UNKNOWN", "ticket_opened"),
        ({"eventVersion": "1.0.0"}, "GSEVT_EVENT_UNKNOWN", "1.0.0"),
        ({"eventName": "Ticket_Closed"}, "GSEVT_EVENT_UNKNOWN", "Ticket_Closed"),
    ],
)
def test_unregistered_publisher_tenant_topic_or_event_is_400(
    client: TestClient, sim: Simulator, override: dict[str, str], code: str, named: str
) -> None:
    response = client.post(EVENTS, headers=event_headers(**override), json={"a": 1})
    assert response.status_code == 400
    assert response.json()["errorCode"] == code and named in response.json()["errorDesc"]
    assert not sim.events


def test_event_registry_is_configurable() -> None:
    config = SimulatorConfig.sandbox(topics={"Billing": [EventDef(name="invoice_paid", version="v01")]})
    with sim_client(config) as client:
        ok = client.post(
            EVENTS,
            headers=event_headers(topicName="Billing", eventName="invoice_paid", eventVersion="v01"),
            json={},
        )
        sandbox_event = client.post(EVENTS, headers=event_headers(), json={})
    assert ok.status_code == 200 and sandbox_event.status_code == 400


@pytest.mark.parametrize("body", [b'[{"a": 1}]', b'"text"', b"1", b"null"])
def test_body_must_be_a_json_object(client: TestClient, sim: Simulator, body: bytes) -> None:
    response = client.post(EVENTS, headers=event_headers(), content=body)
    assert response.status_code == 400 and response.json()["errorCode"] == "GSEVT_BODY_INVALID"
    assert not sim.events


def test_header_names_are_case_insensitive(client: TestClient) -> None:
    headers = {k.lower(): v for k, v in event_headers().items()}
    assert client.post(EVENTS, headers=headers, json={"a": 1}).status_code == 200
