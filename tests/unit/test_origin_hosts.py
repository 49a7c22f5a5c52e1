"""What a web page may reach (api/origins.py): in sandbox mode, a Host other than loopback names,
IP addresses and GSD_HOST is refused (DNS rebinding); the transformer routes refuse what a page
could send without a CORS preflight, in any mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.api.origins import foreign_host
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

TRACK = {"type": "track", "event": "Ticket Closed", "userId": "u", "properties": {}}


def _no_gainsight() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")

    return httpx.MockTransport(refuse)


@pytest.fixture
def sandbox() -> Iterator[TestClient]:
    with TestClient(memory_app(Settings()), base_url="http://127.0.0.1") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/v1/track", {"json": TRACK}),
        ("GET", "/gainsight/__sim/people", {}),
        ("POST", "/gainsight/__sim/reset", {}),
        ("GET", "/health", {}),
    ],
)
@pytest.mark.parametrize("host", ["rebound.example:8080", "rebound.example", "localhost.rebound.example"])
def test_sandbox_refuses_a_rebound_domain(
    sandbox: TestClient, method: str, path: str, kwargs: dict[str, Any], host: str
) -> None:
    response = sandbox.request(method, path, headers={"Host": host}, **kwargs)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden" and "GSD_HOST" in response.json()["message"]


@pytest.mark.parametrize(
    "host",
    ["localhost:8080", "LOCALHOST", "127.0.0.1:8080", "127.8.9.10", "[::1]:8080", "gsd.localhost:8080"],
)
def test_sandbox_answers_loopback_names_and_addresses(sandbox: TestClient, host: str) -> None:
    assert sandbox.get("/gainsight/__sim/people", headers={"Host": host}).status_code == 200
    assert sandbox.post("/v1/track", json=TRACK, headers={"Host": host}).status_code == 200


def test_sandbox_answers_the_configured_host() -> None:
    settings = Settings(host="gsd.internal")
    with TestClient(memory_app(settings), base_url="http://gsd.internal:8080") as client:
        assert client.get("/gainsight/__sim/people").status_code == 200
        assert client.get("/health", headers={"Host": "other.internal"}).status_code == 403


def test_with_auth_on_the_host_is_not_checked(tmp_path: Path) -> None:
    path = tmp_path / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    settings = Settings(destinations=path)
    with TestClient(memory_app(settings, transport=_no_gainsight()), base_url="http://gsd.example") as client:
        assert client.post("/v1/track", json=TRACK, auth=("wk", "")).status_code == 200


@pytest.mark.parametrize(
    ("host", "foreign"),
    [
        ("127.0.0.1:1", None),
        ("[::1]", None),
        ("[::ffff:127.0.0.1]:80", None),
        ("10.1.2.3:8080", None),
        ("localhost", None),
        ("a.b.localhost:1", None),
        ("evil.example:8080", "evil.example"),
        ("127.0.0.1.evil.example", "127.0.0.1.evil.example"),
        ("localhost.", "localhost."),
    ],
)
def test_which_hosts_are_foreign(host: str, foreign: str | None) -> None:
    assert foreign_host({"headers": [(b"host", host.encode())]}, None) == foreign


# ---------------------------------------------------------------- transformer routes


@pytest.fixture
def transformer(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    settings = Settings(destinations=path, transformer_routes="on")  # auth on
    with TestClient(memory_app(settings, transport=_no_gainsight())) as client:
        yield client


ITEMS = orjson.dumps(
    [
        {
            "message": {"type": "identify", "traits": {"email": "ada@example.com"}},
            "destination": {"Config": BASE_CONFIG},
        }
    ]
)


@pytest.mark.parametrize("path", ["/v0/destinations/gainsight", "/routerTransform"])
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_transformer_routes_refuse_bodies_a_page_can_send_without_preflight(
    transformer: TestClient, path: str, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = transformer.post(path, content=ITEMS, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["message"]


@pytest.mark.parametrize("path", ["/v0/destinations/gainsight", "/routerTransform"])
def test_transformer_routes_refuse_any_request_with_an_origin(transformer: TestClient, path: str) -> None:
    headers = {"Content-Type": "application/json", "Origin": "http://testserver"}
    response = transformer.post(path, content=ITEMS, headers=headers)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_transformer_routes_take_json_from_rudder_server(transformer: TestClient) -> None:
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    answer = transformer.post("/v0/destinations/gainsight", content=ITEMS, headers=json_type)
    assert answer.status_code == 200 and answer.json()[0]["statusCode"] == 200
    routed = transformer.post("/routerTransform", content=b'{"input": []}', headers=json_type)
    assert routed.status_code == 200 and routed.json() == {"output": []}
