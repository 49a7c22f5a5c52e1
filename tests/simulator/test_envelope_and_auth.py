"""Every answer is Gainsight's envelope; people and company routes need the access key."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from destination.simulator import SimulatorConfig, create_simulator_app
from tests.simulator.helpers import (
    ACCESS,
    COMPANY,
    EVENTS,
    PEOPLE,
    PEOPLE_ALT,
    QUERY,
    event_headers,
    sim_client,
)

ENVELOPE_KEYS = {"result", "errorCode", "errorDesc", "requestId", "data", "message"}
PROTECTED = [
    ("GET", PEOPLE, None),
    ("PUT", PEOPLE, {"Email": "ada@example.com"}),
    ("PUT", PEOPLE_ALT, {"Email": "ada@example.com"}),
    ("POST", QUERY, {"select": ["Name"]}),
    ("POST", COMPANY, {"records": [{"Name": "Acme"}]}),
    ("PUT", COMPANY + "?keys=Name", {"records": [{"Name": "Acme"}]}),
    ("DELETE", COMPANY + "/1P02" + "0" * 32, None),
]


def test_success_has_the_envelope_with_a_fresh_uuid4_request_id(client: TestClient) -> None:
    first = client.get(PEOPLE, headers=ACCESS).json()
    second = client.get(PEOPLE, headers=ACCESS).json()
    assert set(first) == ENVELOPE_KEYS
    assert first["result"] is True and first["errorCode"] is None and first["errorDesc"] is None
    assert uuid.UUID(first["requestId"]).version == 4
    assert first["requestId"] != second["requestId"]


@pytest.mark.parametrize("path", [PEOPLE, PEOPLE_ALT])
def test_people_ping_answers_result_true(client: TestClient, path: str) -> None:
    response = client.get(path, headers=ACCESS)
    assert response.status_code == 200 and response.json()["result"] is True


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("headers", [{}, {"Accesskey": "wrong"}], ids=["missing", "wrong"])
def test_missing_or_wrong_access_key_is_401_unauthorized(
    client: TestClient, method: str, path: str, body: object, headers: dict[str, str]
) -> None:
    response = client.request(method, path, headers=headers, json=body)
    assert response.status_code == 401
    payload = response.json()
    assert set(payload) == ENVELOPE_KEYS
    assert payload["result"] is False
    assert payload["errorCode"] == "GS_APIG_2401"
    assert payload["errorDesc"] == "Unauthorized"
    assert payload["message"] == "Unauthorized"


@pytest.mark.parametrize("name", ["accesskey", "ACCESSKEY", "AccessKey", "Accesskey"])
def test_access_key_header_name_is_case_insensitive(client: TestClient, name: str) -> None:
    key = ACCESS["Accesskey"]
    assert client.get(PEOPLE, headers={name: key}).status_code == 200


def test_access_key_value_is_case_sensitive(client: TestClient) -> None:
    assert client.get(PEOPLE, headers={"Accesskey": ACCESS["Accesskey"].upper()}).status_code == 401


def test_unauthorized_status_is_configurable() -> None:
    with sim_client(SimulatorConfig.sandbox(unauthorized_status=400)) as client:
        response = client.get(PEOPLE)
    assert response.status_code == 400 and response.json()["errorCode"] == "GS_APIG_2401"


def test_events_route_does_not_need_the_access_key(client: TestClient) -> None:
    response = client.post(EVENTS, headers=event_headers(), json={"ticketId": "T-1"})
    assert response.status_code == 200, response.text
    wrong_key = client.post(EVENTS, headers={**event_headers(), "Accesskey": "wrong"}, json={"a": 1})
    assert wrong_key.status_code == 200


@pytest.mark.parametrize("path", ["/nope", "/v1/data/objects/Nothing/else", "/v1.0/api/people/"])
def test_unknown_path_is_404_envelope_gsobj_1023(client: TestClient, path: str) -> None:
    response = client.get(path, headers=ACCESS)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["errorCode"] == "GSOBJ_1023"
    assert response.json()["result"] is False


def test_wrong_method_on_a_known_path_is_an_envelope_not_html(client: TestClient) -> None:
    response = client.patch(PEOPLE, headers=ACCESS, json={})
    assert response.status_code == 405
    assert response.json()["errorCode"] == "GSOBJ_1023"


@pytest.mark.parametrize("raw", [b"{not json", b"", b"   ", b'{"a": NaN}', b"\xff\xfe"])
@pytest.mark.parametrize("path", [PEOPLE, COMPANY, QUERY])
def test_invalid_json_body_is_400_envelope(client: TestClient, path: str, raw: bytes) -> None:
    method = "PUT" if path == PEOPLE else "POST"
    response = client.request(
        method, path, headers={**ACCESS, "Content-Type": "application/json"}, content=raw
    )
    assert response.status_code == 400
    assert response.json()["result"] is False
    assert response.json()["errorDesc"].startswith("Invalid JSON body")


def test_invalid_json_event_body_is_400_envelope(client: TestClient) -> None:
    response = client.post(EVENTS, headers=event_headers(), content=b"{oops")
    assert response.status_code == 400 and response.json()["errorDesc"].startswith("Invalid JSON body")


def test_unexpected_failure_is_a_500_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("destination.simulator.routes.upsert_person", broken)
    app = create_simulator_app(SimulatorConfig.sandbox())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"})
    assert response.status_code == 500
    assert response.json()["errorCode"] == "GU_1101" and response.json()["result"] is False


def test_works_mounted_under_a_prefix() -> None:
    parent = FastAPI()
    parent.mount("/gainsight", create_simulator_app(SimulatorConfig.sandbox()))
    with TestClient(parent) as client:
        assert client.get("/gainsight" + PEOPLE, headers=ACCESS).status_code == 200
        assert client.get("/gainsight" + PEOPLE).status_code == 401
        assert client.get("/gainsight/nope").json()["errorCode"] == "GSOBJ_1023"
        log = client.get("/gainsight/__sim/requests").json()
    assert [(e["path"], e["endpoint"], e["status"]) for e in log] == [
        (PEOPLE, "people.ping", 200),
        (PEOPLE, "people.ping", 401),
        ("/nope", None, 404),
    ]
