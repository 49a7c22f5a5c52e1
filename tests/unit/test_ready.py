"""/ready names why the store cannot be used (not just an exception's class), within 5 s."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.api import health
from destination.delivery.store import Store, StoreUnavailableError
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app


class UnansweringStore:
    """The real store, whose `counts` and `enqueue` fail with `error`; `counts` hangs while
    `hang` is set."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.error: Exception | None = None
        self.hang = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def enqueue(self, events: Any) -> Any:
        if self.error is not None:
            raise self.error
        return await self.inner.enqueue(events)

    async def counts(self) -> Any:
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        return await self.inner.counts()


def _client(tmp_path: Path) -> tuple[TestClient, list[UnansweringStore]]:
    path = tmp_path / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    stores: list[UnansweringStore] = []

    def wrap(store: Store) -> Store:
        stores.append(UnansweringStore(store))
        return stores[0]  # type: ignore[return-value]

    transport = httpx.MockTransport(lambda r: httpx.Response(500))
    app = memory_app(Settings(destinations=path), transport=transport, wrap_store=wrap)
    return TestClient(app), stores


UNREACHABLE = StoreUnavailableError(
    "the PostgreSQL store cannot be reached",
    'connection failed: connection to server at "10.1.2.3", port 5433 failed: Connection refused',
)


def test_ready_names_the_cause_the_store_gave(tmp_path: Path) -> None:
    client, stores = _client(tmp_path)
    with client:
        stores[0].error = UNREACHABLE
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["problems"] == [
            "store: the PostgreSQL store cannot be reached: connection failed: connection to server at "
            '"10.1.2.3", port 5433 failed: Connection refused'
        ]


def test_senders_get_the_message_without_the_drivers_words(tmp_path: Path) -> None:
    client, stores = _client(tmp_path)
    with client:
        stores[0].error = UNREACHABLE
        sent = client.post(
            "/v1/identify", json={"userId": "u", "traits": {"email": "a@b.co"}}, auth=("wk", "")
        )
        assert sent.status_code == 503 and sent.json()["message"] == "the PostgreSQL store cannot be reached"
        assert "10.1.2.3" not in sent.text
        assert "10.1.2.3" in client.get("/ready").json()["problems"][0]  # operators see it


def test_readys_bound_is_within_the_5_s_the_readme_promises() -> None:
    assert health.ANSWER_WITHIN < 5.0


def test_ready_answers_in_time_while_the_store_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "ANSWER_WITHIN", 0.2)
    client, stores = _client(tmp_path)
    with client:
        stores[0].hang = True
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["problems"] == ["store: no answer within 0.2 s"]
