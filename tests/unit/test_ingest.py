"""Ingest routes in process: what a 200 and a 400 promise, with the in-memory store."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

AUTH = ("wk_live", "")
IDENTIFY = {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com"}}
TRACK = {"type": "track", "event": "Ticket Closed", "userId": "u1", "properties": {}}


@pytest.fixture
def client(tmp_path: Path, strict_transport: Callable[[], httpx.MockTransport]) -> Iterator[TestClient]:
    path = tmp_path / "destinations.json"
    destinations = [
        {"id": "acme", "writeKeys": ["wk_live"], "config": BASE_CONFIG},
        {"id": "beta", "writeKeys": ["wk_beta"], "config": BASE_CONFIG},
    ]
    path.write_bytes(orjson.dumps({"destinations": destinations}))
    settings = Settings(destinations=path, max_body_bytes=2048, admin_token="admin-token")
    with TestClient(memory_app(settings, transport=strict_transport())) as test_client:
        yield test_client


def queued(client: TestClient) -> dict[str, int]:
    runtime: Any = client.app.state.runtime  # type: ignore[attr-defined]
    return dict(client.portal.call(runtime.store.counts))  # type: ignore[union-attr]


def total(client: TestClient) -> int:
    return sum(queued(client).values())


def test_single_event_is_stored_and_message_id_assigned(client: TestClient) -> None:
    response = client.post(
        "/v1/identify", json={"userId": "ada", "traits": {"email": "ada@example.com"}}, auth=AUTH
    )
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["stored"] == 1 and len(body["messageIds"][0]) == 36
    assert body["rejected"] == [] and body["acknowledged"] == []
    assert total(client) == 1


def test_route_sets_the_type(client: TestClient) -> None:
    response = client.post(
        "/v1/track", json={"type": "page", "event": "Ticket Closed", "userId": "u"}, auth=AUTH
    )
    assert response.json()["stored"] == 1


def test_events_gainsight_cannot_take_are_stored_for_the_planner(client: TestClient) -> None:
    """Wrong field types and missing emails are the planner's call: stored, finished as rejected."""
    for body in ({"userId": "u", "traits": "nope"}, {"userId": "u", "traits": {"name": "x"}}):
        response = client.post("/v1/identify", json=body, auth=AUTH)
        assert response.status_code == 200 and response.json()["stored"] == 1


def test_batch_keeps_good_events_and_lists_what_is_not_an_event(client: TestClient) -> None:
    batch = [
        IDENTIFY,
        {"type": "group", "userId": "u", "traits": {"name": "Acme"}},  # no email: the planner's call
        TRACK,
        {"event": "x", "userId": "u"},
        {"type": "track", "event": "x"},
        "text",
        {"type": "foo", "userId": "u"},
        {"type": "track", "userId": "u", "messageId": True},
        {"type": "page", "userId": "u"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, auth=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 3 and body["rejectedCount"] == 5
    assert body["rejected"] == [
        {"index": 3, "field": "type", "reason": "Message Type is not present"},
        {"index": 4, "field": "userId", "reason": "neither userId nor anonymousId is present"},
        {"index": 5, "field": None, "reason": "expected a JSON object, got string"},
        {"index": 6, "field": "type", "reason": "unknown message type 'foo'"},
        {
            "index": 7,
            "field": "messageId",
            "reason": "must be a string or an integer of at most 2^53, got boolean True",
        },
    ]
    assert body["acknowledged"] == [{"index": 8, "type": "page"}]
    assert total(client) == 3


@pytest.mark.parametrize(
    ("raw_id", "stored_as"),
    [(b'"m-1"', "m-1"), (b"42", "42"), (b"-9007199254740992", "-9007199254740992")],
)
def test_message_ids_that_json_carries_exactly(client: TestClient, raw_id: bytes, stored_as: str) -> None:
    body = b'{"type":"track","event":"Ticket Closed","userId":"u","messageId":' + raw_id + b"}"
    response = client.post("/v1/track", content=body, auth=AUTH)
    assert response.json()["messageIds"] == [stored_as]


@pytest.mark.parametrize(
    "raw_id",
    [b"1.0", b"1.0e-400", b"1e3", b"9007199254740993", b"true", b"{}", b"[1]", b'"' + b"x" * 600 + b'"'],
)
def test_unusable_message_ids_are_rejected_naming_the_field(client: TestClient, raw_id: bytes) -> None:
    body = b'{"batch":[{"type":"track","event":"Ticket Closed","userId":"u","messageId":' + raw_id + b"}]}"
    answer = client.post("/v1/batch", content=body, auth=AUTH).json()
    assert answer["stored"] == 0 and answer["rejected"][0]["field"] == "messageId"


def test_a_request_with_no_events_is_400(client: TestClient) -> None:
    for path, body in (("/v1/batch", {"batch": []}), ("/webhook", [])):
        response = client.post(path, json=body, auth=AUTH)
        assert response.status_code == 400
        assert response.json() == {
            "code": "invalid_request",
            "message": "the request holds no events",
            "error": "the request holds no events",
        }


def test_batch_stores_every_event(client: TestClient) -> None:
    response = client.post("/v1/batch", json={"batch": [IDENTIFY, TRACK]}, auth=AUTH)
    assert response.json()["stored"] == 2 and total(client) == 2


@pytest.mark.parametrize("body", [{"batch": "x"}, {"events": []}, [IDENTIFY]])
def test_batch_shape(client: TestClient, body: Any) -> None:
    response = client.post("/v1/batch", json=body, auth=AUTH)
    assert response.status_code == 400 and "batch" in response.json()["message"]


def test_unsupported_types_are_acknowledged_not_stored(client: TestClient) -> None:
    response = client.post(
        "/webhook",
        json=[{"type": "page", "name": "Home", "userId": "u"}, TRACK, {"type": "Screen", "anonymousId": "a"}],
        auth=AUTH,
    )
    body = response.json()
    assert response.status_code == 200 and body["stored"] == 1
    assert body["acknowledged"] == [{"index": 0, "type": "page"}, {"index": 2, "type": "screen"}]


@pytest.mark.parametrize("kind", ["page", "screen", "alias"])
def test_page_screen_alias_routes_acknowledge(client: TestClient, kind: str) -> None:
    response = client.post(f"/v1/{kind}", json={"userId": "u", "previousId": "p"}, auth=AUTH)
    assert response.status_code == 200
    assert response.json()["acknowledged"] == [{"index": 0, "type": kind}] and total(client) == 0
    text = client.get("/metrics").text
    assert f'gsd_events_ignored_total{{destination="acme",type="{kind}"}} 1.0' in text


def test_webhook_takes_one_event(client: TestClient) -> None:
    assert client.post("/webhook", json=TRACK, auth=AUTH).json()["stored"] == 1


def test_duplicates_are_acknowledged_and_stored_once(client: TestClient) -> None:
    event = {**TRACK, "messageId": "same"}
    assert client.post("/v1/track", json=event, auth=AUTH).json()["stored"] == 1
    second = client.post("/v1/batch", json={"batch": [event, event]}, auth=AUTH).json()
    assert (second["stored"], second["duplicates"]) == (0, 2)
    assert total(client) == 1


def test_same_message_id_for_another_destination_is_not_a_duplicate(client: TestClient) -> None:
    event = {**TRACK, "messageId": "same"}
    client.post("/v1/track", json=event, auth=AUTH)
    assert client.post("/v1/track", json=event, auth=("wk_beta", "")).json()["stored"] == 1


def test_gzip_body(client: TestClient) -> None:
    raw = gzip.compress(orjson.dumps({"batch": [IDENTIFY, TRACK]}))
    response = client.post(
        "/v1/batch",
        content=raw,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        auth=AUTH,
    )
    assert response.json()["stored"] == 2


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {"batch": [{**TRACK, "properties": {"x": "y" * 3000}}]}
    assert client.post("/v1/batch", json=big, auth=AUTH).status_code == 413
    bomb = gzip.compress(orjson.dumps({"batch": [{**TRACK, "properties": {"x": "y" * 100_000}}]}))
    response = client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"}, auth=AUTH)
    assert response.status_code == 413


def test_unparseable_bodies(client: TestClient) -> None:
    assert client.post("/v1/track", content=b"{", auth=AUTH).status_code == 400
    assert client.post("/v1/track", content=b"", auth=AUTH).status_code == 400
    response = client.post("/v1/track", content=b"x", headers={"Content-Encoding": "br"}, auth=AUTH)
    assert response.status_code == 415


def test_credentials_required_by_default(client: TestClient) -> None:
    response = client.post("/v1/track", json=TRACK)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
    assert total(client) == 0


def test_named_destination_needs_its_own_credentials(client: TestClient) -> None:
    assert client.post("/v1/d/beta/track", json=TRACK, auth=AUTH).status_code == 401
    assert client.post("/v1/d/beta/track", json=TRACK, auth=("wk_beta", "")).status_code == 200
    unknown = client.post("/v1/d/nope/track", json=TRACK, auth=AUTH)
    known = client.post("/v1/d/beta/track", json=TRACK, auth=AUTH)
    assert (unknown.status_code, unknown.json(), unknown.headers["www-authenticate"]) == (
        known.status_code,
        known.json(),
        known.headers["www-authenticate"],
    )


def test_admin_routes_take_the_admin_token_alone(client: TestClient) -> None:
    assert client.get("/admin/dead-letters").status_code == 401
    assert (
        client.get("/admin/dead-letters", headers={"Authorization": "Bearer admin-token"}).status_code == 200
    )
    assert client.get("/admin/dead-letters", auth=("me", "admin-token")).status_code == 200
    assert client.get("/admin/dead-letters", auth=AUTH).status_code == 401


def test_metrics_exposed(client: TestClient) -> None:
    client.post("/v1/track", json=TRACK, auth=AUTH)
    text = client.get("/metrics").text
    assert 'gsd_events_ingested_total{destination="acme",type="track"} 1.0' in text
    assert "gsd_queue_events" in text


def test_the_usage_row_mark_is_the_service_s_own_and_refused_from_senders(client: TestClient) -> None:
    marked = {**TRACK, "context": {"gsdUsageRow": {"company": "G1", "day": "2026-12-06", "metric": "x"}}}
    answer = client.post("/v1/batch", json={"batch": [marked, TRACK]}, auth=AUTH).json()
    assert answer["stored"] == 1
    assert answer["rejected"][0]["field"] == "context.gsdUsageRow"
    assert "reserved" in answer["rejected"][0]["reason"]
