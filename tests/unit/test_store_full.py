"""A store that cannot commit while the workers deliver (a full disk): /ready says so with the cause,
the log says it once when it starts and once when it ends, and delivery resumes by itself."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.app import create_app
from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import Store, StoreFullError
from destination.settings import Settings
from tests.conftest import BASE_CONFIG

AUTH = ("wk", "")
TRACK = {"type": "track", "event": "Ticket Closed", "userId": "u", "messageId": "m1", "properties": {}}
PUBLISH = "https://acme.gainsightcloud.com/v1.0/api/eventManager/event"
FULL = StoreFullError("the store cannot commit: database or disk is full (disk full)")


class DiskFullStore:
    """The real SQLite store, whose `operation` fails as on a full disk while `full` is set, or
    (`held`) finds nothing to do; `calls` counts the calls to it."""

    def __init__(self, inner: Store, operation: str) -> None:
        self.inner = inner
        self.operation = operation
        self.full = False
        self.held = False
        self.failures = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name != self.operation:
            return found

        async def failing(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.held:
                return []
            if self.full:
                self.failures += 1
                raise FULL
            return await found(*args, **kwargs)

        return failing


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def store_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "destination.delivery.health"]


@pytest.mark.parametrize("operation", ["claim", "complete"])
def test_delivery_waits_out_a_full_disk_reported_once_and_resumes_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, operation: str
) -> None:
    caplog.set_level(logging.INFO)
    published: list[str] = []

    def gainsight(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == PUBLISH, f"unexpected call {request.method} {request.url}"
        published.append(request.headers["eventName"])
        return httpx.Response(200, json={"result": True})

    wrapped: list[DiskFullStore] = []

    def wrap(store: Store) -> Store:
        wrapped.append(DiskFullStore(store, operation))
        return wrapped[0]  # type: ignore[return-value]

    destinations = tmp_path / "destinations.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    settings = Settings(
        destinations=destinations, store_url=f"sqlite:///{tmp_path}/gsd.sqlite3", lease_seconds=1.0
    )
    app = create_app(settings, transport=httpx.MockTransport(gainsight), wrap_store=wrap)
    with TestClient(app) as client:
        store = wrapped[0]
        # The event is stored (ingest commits: the store works) before the disk fills: a claim
        # woken by that ingest must not race it, so claims find nothing until then.
        store.held = operation == "claim"
        store.full = operation == "complete"
        assert client.post("/v1/track", json=TRACK, auth=AUTH).json()["stored"] == 1
        store.full, store.held = True, False
        # The workers keep trying (a poll every 0.5 s; "complete": each time the lease runs out).
        wait_until(lambda: store.failures >= 3, "the workers met the full disk three times")
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "store cannot commit: the store cannot commit: database or disk is full" in ready.text
        during = {"claim": "claiming events", "complete": "recording deliveries"}[operation]
        assert [line.split(":")[0] for line in store_lines(caplog)] == [f"store failing (while {during})"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback per try

        store.full = False  # space again: no restart
        wait_until(lambda: delivered(client), "the event is delivered")
        wait_until(lambda: client.get("/ready").status_code == 200, "/ready says ready")
        lines = store_lines(caplog)
        assert len(lines) == 2 and lines[1].startswith("store commits again; delivery resumes")
        assert "database or disk is full" in lines[1]
        assert published and set(published) == {"ticket_closed"}


def delivered(client: TestClient) -> bool:
    queue = client.get("/ready").json()["queue"]
    return bool(queue.get("delivered") == 1)


def test_a_file_sqlite_may_not_grow_stops_claims_until_it_may_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same with no fault injected: SQLite's own SQLITE_FULL, the file capped by max_page_count."""
    caplog.set_level(logging.INFO)
    published: list[str] = []

    def gainsight(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == PUBLISH, f"unexpected call {request.method} {request.url}"
        published.append(request.headers["eventName"])
        return httpx.Response(200, json={"result": True})

    wrapped: list[DiskFullStore] = []

    def wrap(store: Store) -> Store:
        wrapped.append(DiskFullStore(store, "claim"))
        wrapped[0].held = True  # nothing claimed until the file is capped
        return wrapped[0]  # type: ignore[return-value]

    destinations = tmp_path / "destinations.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    settings = Settings(
        destinations=destinations,
        store_url=f"sqlite:///{tmp_path}/gsd.sqlite3",
        rate_limit_per_minute=10_000,  # the budget out of the way: 300 calls at once
    )
    app = create_app(settings, transport=httpx.MockTransport(gainsight), wrap_store=wrap)
    with TestClient(app) as client:
        store = wrapped[0]
        batch = [{**TRACK, "userId": f"u{i}", "messageId": f"m{i}"} for i in range(300)]
        assert client.post("/v1/batch", json={"batch": batch}, auth=AUTH).json()["stored"] == 300
        sqlite = store.inner
        assert isinstance(sqlite, SQLiteStore)

        def cap(grow: bool) -> None:
            def job(conn: sqlite3.Connection) -> None:
                (count,) = conn.execute("PRAGMA page_count").fetchone()
                conn.execute(f"PRAGMA max_page_count = {2**30 if grow else count}")

            client.portal.call(lambda: sqlite._writer.run(job, writes=False))

        cap(grow=False)  # the file may not grow: leasing 300 events needs new pages
        store.held = False
        tried = store.calls
        wait_until(lambda: store.calls >= tried + 3, "three claims were tried")
        ready = client.get("/ready")
        assert ready.status_code == 503 and "database or disk is full" in ready.text
        (line,) = store_lines(caplog)
        assert line.startswith("store failing (while claiming events): the store cannot commit: database")
        assert published == []

        cap(grow=True)
        wait_until(lambda: client.get("/ready").json()["queue"].get("delivered") == 300, "all are delivered")
        wait_until(lambda: client.get("/ready").status_code == 200, "/ready says ready")
        lines = store_lines(caplog)
        assert len(lines) == 2 and lines[1].startswith("store commits again; delivery resumes")
        assert len(published) == 300
