"""Admin and status bodies: the admin token is checked before a byte of the body is read, and
every body is bounded (GSD_MAX_BODY_BYTES, GSD_BODY_TIMEOUT_SECONDS), also the embedded simulator's.

The app is driven in process through httpx's ASGI transport, whose request body is a generator
here: it counts how many chunks the service pulled, so "not read" is observed, not timed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

pytestmark = pytest.mark.anyio

TOKEN = "admin-token-for-bodies"
CHUNK = b"x" * (1024 * 1024)
MAX_BODY = 65_536
BODY_ROUTES = ["/admin/dead-letters/purge", "/admin/dead-letters/replay", "/status/replay"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Body:
    """A large request body, streamed a chunk at a time; `pulled` counts chunks taken."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield CHUNK


def _app(tmp: Path, **settings: Any) -> FastAPI:
    path = tmp / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    return memory_app(Settings(destinations=path, max_body_bytes=MAX_BODY, **settings))


async def _post(app: FastAPI, path: str, body: Body, **headers: str) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_admin_routes_off_refuse_a_body_without_reading_it(tmp_path: Path, path: str) -> None:
    body = Body(chunks=100)
    response = await _post(_app(tmp_path), path, body)
    assert response.status_code == 404 and "GSD_ADMIN_TOKEN" in response.json()["message"]
    assert body.pulled == 0


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic !!"])
async def test_without_the_token_a_body_is_refused_unread(tmp_path: Path, authorization: str | None) -> None:
    body = Body(chunks=100)
    headers = {"Authorization": authorization} if authorization else {}
    response = await _post(_app(tmp_path, admin_token=TOKEN), "/admin/dead-letters/purge", body, **headers)
    assert response.status_code == 401
    assert body.pulled == 0


@pytest.mark.parametrize("path", BODY_ROUTES)
async def test_with_the_token_an_oversize_body_gets_413(tmp_path: Path, path: str) -> None:
    body = Body(chunks=100)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = await _post(_app(tmp_path, admin_token=TOKEN), path, body, **auth)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert body.pulled <= 2  # stops at the limit, not at the end of the 100 MB


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path, admin_token=TOKEN), base_url="http://127.0.0.1") as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def test_a_declared_content_length_over_the_limit_is_refused_at_once(admin: Any) -> None:
    headers = {"Content-Length": str(10 * MAX_BODY), "Content-Type": "application/json"}
    content = b"{}" + b" " * (10 * MAX_BODY - 2)
    response = admin.post("/admin/dead-letters/purge", content=content, headers=headers)
    assert response.status_code == 413 and str(MAX_BODY) in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        (b"", 200, "nothing selected"),
        (b"null", 200, "nothing selected"),
        (b'{"ids": []}', 200, "nothing selected"),
        (b'{"ids": ["x"]}', 400, "ids.0"),
        (b'{"everything": true}', 400, "everything"),
        (b"{", 400, "JSON"),
    ],
)
def test_the_selection_is_still_validated_naming_the_field(
    admin: Any, body: bytes, status: int, said: str
) -> None:
    response = admin.post("/admin/dead-letters/purge", content=body)
    assert response.status_code == status, response.text
    assert said in response.text


def test_a_selection_is_acted_on(admin: Any) -> None:
    response = admin.post("/admin/dead-letters/replay", json={"ids": [2**64]})
    assert response.status_code == 200 and response.json() == {"replayed": 0}


async def test_the_embedded_simulator_bounds_its_bodies(tmp_path: Path) -> None:
    app = memory_app(Settings(max_body_bytes=MAX_BODY))  # sandbox mode
    body = Body(chunks=100)
    response = await _post(app, "/gainsight/__sim/faults", body, **{"Content-Type": "application/json"})
    assert response.status_code == 413
    assert body.pulled <= 2
