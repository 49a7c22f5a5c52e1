"""Fixtures for the delivery tests: every store test runs against the SQLite and memory stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from destination.delivery.memory import MemoryStore
from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import DEDUPE_WINDOW_SECONDS, NewEvent, QueuedEvent, Store

StoreFactory = Callable[..., Store]

T0 = 1_700_000_000.0  # a fixed "now" for tests; stores take their time as an argument


class FakeClock:
    """A settable clock; `sleep` advances it instead of waiting."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def event(
    message_id: str,
    person: str = "ada@example.com",
    *,
    destination: str = "acme",
    at: float = T0,
    kind: str = "track",  # claimed alone; person runs are tested with identify/group
) -> NewEvent:
    payload = b'{"type":"%s","messageId":"%s"}' % (kind.encode(), message_id.encode())
    return NewEvent(destination, message_id, person, kind, payload, at)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[StoreFactory]:
    """Opens stores of the parametrised kind (each SQLite one on its own file); closes them after."""
    opened: list[Store] = []

    def make(dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(dedupe_window_seconds=dedupe_window_seconds, clock=clock)
        else:
            path = tmp_path / f"store{len(opened)}.sqlite3"
            store = SQLiteStore(path, dedupe_window_seconds=dedupe_window_seconds, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


async def claim_events(
    store: Store, now: float, limit: int, lease_seconds: float = 30.0
) -> list[QueuedEvent]:
    """Every event of the claims `store.claim` hands out, in claim order."""
    return [e for claim in await store.claim(now, limit, lease_seconds) for e in claim.events]
