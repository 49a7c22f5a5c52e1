"""Odd but valid (or invalid) inputs that once crashed or misled: each now gets a clear answer."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

AUTH = ("wk", "")


@pytest.fixture
def client(tmp_path: Path, strict_transport: Callable[[], httpx.MockTransport]) -> Iterator[TestClient]:
    path = tmp_path / "d.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    settings = Settings(destinations=path)
    with TestClient(memory_app(settings, transport=strict_transport())) as c:
        yield c


def test_lone_surrogate_is_a_400(client: TestClient) -> None:
    body = b'{"traits":{"email":"a@b.co","x":"\\ud800"}}'
    response = client.post("/v1/identify", content=body, auth=AUTH)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]


def test_overflowing_number_is_a_400(client: TestClient) -> None:
    response = client.post("/v1/identify", content=b'{"traits":{"email":"a@b.co","seats":1e400}}', auth=AUTH)
    assert response.status_code == 400


def test_huge_numeric_message_ids_are_refused_not_merged(client: TestClient) -> None:
    body = b'{"messageId":123456789012345678901234567890,"userId":"u","traits":{"email":"a@b.co"}}'
    response = client.post("/v1/identify", content=body, auth=AUTH)
    assert response.status_code == 200 and response.json()["stored"] == 0
    assert response.json()["rejected"][0]["field"] == "messageId"
    ok = client.post(
        "/v1/identify", json={"messageId": 42, "userId": "u", "traits": {"email": "a@b.co"}}, auth=AUTH
    )
    assert ok.json()["messageIds"] == ["42"]


def test_non_ascii_basic_credentials_are_a_401(client: TestClient) -> None:
    headers = {"Authorization": "Basic \u00e9\u00e9".encode("latin-1")}  # bytes: httpx sends them as they are
    response = client.post("/v1/identify", json={}, headers=headers)  # type: ignore[dict-item]
    assert response.status_code == 401


def test_multi_member_gzip_is_read_whole(client: TestClient) -> None:
    whole = orjson.dumps({"batch": [{"type": "track", "event": "Ticket Closed", "userId": "u"}] * 2})
    body = gzip.compress(whole[:10]) + gzip.compress(whole[10:])
    response = client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"}, auth=AUTH)
    assert response.status_code == 200 and response.json()["stored"] == 2


def test_truncated_gzip_is_a_400(client: TestClient) -> None:
    body = gzip.compress(b'{"batch": []}')[:-6]
    response = client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip"}, auth=AUTH)
    assert response.status_code == 400
