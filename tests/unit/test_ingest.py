"""Ingest routes in process: what a 200 and a 400 promise, with the in-memory store."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.app import create_app
from destination.settings import Settings
from tests.conftest import BASE_CONFIG

AUTH = ("wk_live", "")
IDENTIFY = {"type": "identify", "traits": {"email": "ada@example.com"}}
TRACK = {"type": "track", "event": "Ticket Closed", "userId": "u1", "properties": {}}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "destinations.json"
    destinations = [
        {"id": "acme", "writeKeys": ["wk_live"], "config": BASE_CONFIG},
        {"id": "beta", "writeKeys": ["wk_beta"], "config": BASE_CONFIG},
    ]
    path.write_bytes(orjson.dumps({"destinations": destinations}))
    settings = Settings(
        destinations=path, store_url="memory://", max_body_bytes=2048, admin_token="admin-token"
    )
    gainsight = httpx.MockTransport(lambda r: httpx.Response(200, json={"result": True}))
    with TestClient(create_app(settings, transport=gainsight)) as test_client:
        yield test_client


def queued(client: TestClient) -> dict[str, int]:
    runtime: Any = client.app.state.runtime  # type: ignore[attr-defined]
    return dict(client.portal.call(runtime.store.counts))  # type: ignore[union-attr]


def total(client: TestClient) -> int:
    return sum(queued(client).values())


def test_single_event_is_stored_and_message_id_assigned(client: TestClient) -> None:
    response = client.post("/v1/identify", json={"traits": {"email": "ada@example.com"}}, auth=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["stored"] == 1 and len(body["messageIds"][0]) == 36
    assert total(client) == 1


def test_route_sets_the_type(client: TestClient) -> None:
    response = client.post(
        "/v1/track", json={"type": "page", "event": "Ticket Closed", "userId": "u"}, auth=AUTH
    )
    assert response.json()["stored"] == 1


def test_invalid_event_names_the_field(client: TestClient) -> None:
    response = client.post("/v1/identify", json={"traits": "nope"}, auth=AUTH)
    assert (
        response.status_code == 400
        and response.json()["error"] == "event.traits: Input should be a valid dictionary"
    )
    response = client.post("/v1/identify", json={"traits": {"name": "x"}}, auth=AUTH)
    assert response.json()["error"] == "event: email is required for identify"


def test_batch_is_all_or_nothing_with_indexes(client: TestClient) -> None:
    batch = [IDENTIFY, {"type": "group", "traits": {"name": "Acme"}}, TRACK, {"event": "x"}]
    response = client.post("/v1/batch", json={"batch": batch}, auth=AUTH)
    assert response.status_code == 400
    body = response.json()
    assert body["stored"] == 0
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert body["errors"][0]["error"] == "batch[1]: user email is required for group"
    assert body["errors"][1]["error"] == "batch[3].type: Message Type is not present. Aborting message."
    assert total(client) == 0


def test_batch_stores_every_event(client: TestClient) -> None:
    response = client.post("/v1/batch", json={"batch": [IDENTIFY, TRACK]}, auth=AUTH)
    assert response.json()["stored"] == 2 and total(client) == 2


@pytest.mark.parametrize("body", [{"batch": "x"}, {"events": []}, [IDENTIFY]])
def test_batch_shape(client: TestClient, body: Any) -> None:
    response = client.post("/v1/batch", json=body, auth=AUTH)
    assert response.status_code == 400 and "batch" in response.json()["error"]


def test_unsupported_types_are_acknowledged_not_stored(client: TestClient) -> None:
    response = client.post(
        "/webhook", json=[{"type": "page", "name": "Home"}, TRACK, {"type": "Screen"}], auth=AUTH
    )
    body = response.json()
    assert response.status_code == 200 and body["stored"] == 1
    assert body["ignored"] == [{"index": 0, "type": "page"}, {"index": 2, "type": "Screen"}]


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
    assert client.post("/v1/d/nope/track", json=TRACK, auth=AUTH).status_code == 404


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
