"""What one event may carry (GSD_MAX_EVENT_FIELDS, GSD_MAX_EVENT_BYTES): planning runs on the event
loop, so an event over a limit is rejected at ingest as that item's error, naming the limit; the
other items of the request are stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.events import EventLimits, over_limits
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

AUTH = ("wk", "")
GOOD = {"type": "identify", "userId": "u", "traits": {"email": "ada@example.com"}}


def _no_gainsight() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")

    return httpx.MockTransport(refuse)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    settings = Settings(destinations=path, max_event_fields=50, max_event_bytes=16_384, workers=1)
    app = memory_app(settings, transport=_no_gainsight())
    with TestClient(app) as test_client:
        test_client.app.state.runtime.worker.cancel()  # type: ignore[attr-defined]  # nothing delivered
        yield test_client


def _fields(count: int) -> dict[str, Any]:
    return {f"t{i}": i for i in range(count)}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"type": "identify", "userId": "u", "traits": {"email": "a@example.com", **_fields(50)}}, "traits"),
        (
            {"type": "group", "userId": "u", "groupId": "g", "context": {"traits": _fields(51)}},
            "context.traits",
        ),
        ({"type": "track", "userId": "u", "event": "Ticket Closed", "properties": _fields(51)}, "properties"),
    ],
)
def test_an_event_with_too_many_fields_is_that_items_error(
    client: TestClient, event: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/batch", json={"batch": [event, GOOD]}, auth=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] == 1 and body["rejectedCount"] == 1
    rejected = body["rejected"][0]
    assert rejected["index"] == 0 and rejected["field"] == field
    assert rejected["reason"] == "has 51 fields; at most 50 are accepted (GSD_MAX_EVENT_FIELDS)"


def test_an_event_larger_than_the_limit_is_that_items_error(client: TestClient) -> None:
    big = {"type": "identify", "userId": "u", "traits": {"email": "a@example.com", "bio": "x" * 20_000}}
    response = client.post("/v1/identify", json=big, auth=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 0 and body["rejected"][0]["field"] is None
    reason = body["rejected"][0]["reason"]
    assert "at most 16384 are accepted (GSD_MAX_EVENT_BYTES)" in reason


def test_an_event_at_the_limits_is_stored(client: TestClient) -> None:
    event = {"type": "track", "userId": "u", "event": "Ticket Closed", "properties": _fields(50)}
    assert client.post("/v1/track", json=event, auth=AUTH).json()["stored"] == 1


def test_the_limits_count_the_event_as_stored() -> None:
    limits = EventLimits(max_fields=2, max_bytes=100)
    payload = {"traits": {"a": 1, "b": 2}, "properties": "not an object", "context": {"traits": None}}
    assert over_limits(payload, 100, limits) is None
    assert over_limits(payload, 101, limits) is not None
    assert over_limits({"traits": {"a": 1, "b": 2, "c": 3}}, 10, limits) is not None
