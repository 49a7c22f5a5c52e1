"""/__sim/ inspection: what was received, the request log, counters, reset; never secrets."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from destination.simulator import SANDBOX, FaultConfig, Simulator, SimulatorConfig
from tests.simulator.helpers import (
    ACCESS,
    COMPANY,
    EVENTS,
    PEOPLE,
    event_headers,
    insert_company,
    sign,
    sim_client,
)


def test_app_state_holds_the_simulator(client: TestClient) -> None:
    assert isinstance(client.app.state.simulator, Simulator)  # type: ignore[attr-defined]


def test_people_and_companies_are_listed_as_stored(client: TestClient) -> None:
    gsid = insert_company(client, Name="Acme", Tier__gc="gold")
    client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com", "companies": [{"Company_ID": gsid}]})
    [company] = client.get("/__sim/companies").json()
    [person] = client.get("/__sim/people").json()
    assert (company["Gsid"], company["Name"], company["Tier__gc"]) == (gsid, "Acme", "gold")
    assert person["Email"] == "ada@example.com" and person["companies"] == [{"Company_ID": gsid}]


def test_received_events_keep_headers_without_secrets(client: TestClient) -> None:
    body = {"ticketId": "T-1"}
    headers = {**event_headers(), "contractId": "C-1", "Accesskey": SANDBOX.access_key}
    headers["X-Payload-Signature"] = sign(body, headers)
    assert client.post(EVENTS, headers=headers, json=body).status_code == 200
    [event] = client.get("/__sim/events").json()
    assert event["contractId"] == "C-1" and event["body"] == body
    assert {"tenantid", "topicname", "eventname", "eventversion", "contractid"} <= set(event["headers"])
    assert not {"sharedsecret", "accesskey", "x-payload-signature"} & set(event["headers"])
    assert SANDBOX.shared_secret not in json.dumps(event) and SANDBOX.access_key not in json.dumps(event)


def test_request_log_has_method_path_status_time_and_no_secrets(client: TestClient) -> None:
    client.get(PEOPLE, headers=ACCESS)
    client.put(
        f"{COMPANY}?keys=Name&accesskey={SANDBOX.access_key}",
        headers=ACCESS,
        json={"records": [{"Name": "X"}]},
    )
    client.post(EVENTS, headers=event_headers(), json={"a": 1})
    client.get("/nowhere")
    log = client.get("/__sim/requests").json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", PEOPLE, 200),
        ("PUT", COMPANY, 400),
        ("POST", EVENTS, 200),
        ("GET", "/nowhere", 404),
    ]
    assert log[1]["query"] == "keys=Name&accesskey=***"
    assert all(isinstance(e["time"], float) for e in log)
    text = json.dumps(log)
    assert SANDBOX.access_key not in text and SANDBOX.shared_secret not in text


def test_counters_per_endpoint_and_status(client: TestClient) -> None:
    client.get(PEOPLE, headers=ACCESS)
    client.get(PEOPLE)
    insert_company(client, Name="Acme")
    counters = client.get("/__sim/counters").json()
    assert counters["endpoints"]["people.ping"] == {
        "calls": 2,
        "throttled": 0,
        "by_status": {"200": 1, "401": 1},
        "faults": {},
    }
    assert counters["endpoints"]["company.insert"]["by_status"] == {"200": 1}
    assert counters["total"]["calls"] == 3 and counters["over_budget_accepted"] == 0


def test_request_log_keeps_only_the_most_recent() -> None:
    with sim_client(SimulatorConfig.sandbox(request_log_size=2)) as client:
        for path in ("/a", "/b", "/c"):
            client.get(path)
        assert [e["path"] for e in client.get("/__sim/requests").json()] == ["/b", "/c"]


def test_reset_forgets_everything_and_rearms_configured_faults() -> None:
    config = SimulatorConfig.sandbox(rate_limit_per_minute=3, faults=FaultConfig(throttle_next=1))
    with sim_client(config) as client:
        assert client.get(PEOPLE, headers=ACCESS).status_code == 429
        gsid = insert_company(client, Name="Acme")
        client.put(
            PEOPLE, headers=ACCESS, json={"Email": "a@example.com", "companies": [{"Company_ID": gsid}]}
        )
        assert client.get(PEOPLE, headers=ACCESS).status_code == 429  # budget of 3 spent
        assert client.post("/__sim/reset").json() == {"reset": True}
        for route in ("people", "companies", "events", "associations", "requests"):
            assert client.get(f"/__sim/{route}").json() == []
        assert client.get("/__sim/counters").json()["endpoints"] == {}
        assert client.get("/__sim/faults").json()["throttle_next"] == 1
        assert client.get(PEOPLE, headers=ACCESS).status_code == 429  # the re-armed fault
        assert client.get(PEOPLE, headers=ACCESS).status_code == 200  # and a fresh budget


def test_reset_forgets_seen_jtis(client: TestClient) -> None:
    body = {"a": 1}
    headers = {**event_headers(), "X-Payload-Signature": sign(body, event_headers(), jti="once")}
    assert client.post(EVENTS, headers=headers, json=body).status_code == 200
    client.post("/__sim/reset")
    assert client.post(EVENTS, headers=headers, json=body).status_code == 200


def test_openapi_lives_under_sim_and_lists_the_gainsight_routes(client: TestClient) -> None:
    paths = client.get("/__sim/openapi.json").json()["paths"]
    assert {PEOPLE, COMPANY, EVENTS, "/v1/data/objects/query/Company"} <= set(paths)
