"""Fixtures for the delivery tests: every store contract test runs against the memory, SQLite and
PostgreSQL stores (PostgreSQL: see tests/pg.py for where the server comes from)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import psycopg
import pytest

from destination.delivery import migrations
from destination.delivery.memory import MemoryStore
from destination.delivery.postgres import PostgresStore
from destination.delivery.sqlite import MIGRATIONS, SQLiteStore
from destination.delivery.store import DEDUPE_WINDOW_SECONDS, NewEvent, QueuedEvent, Store
from destination.delivery.store_values import NO_BOUND, Calls

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
    kind: str = "track",  # one call each: `calls=1` claims one
) -> NewEvent:
    payload = b'{"type":"%s","messageId":"%s"}' % (kind.encode(), message_id.encode())
    return NewEvent(destination, message_id, person, kind, payload, at)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


STORE_KINDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=STORE_KINDS)
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[StoreFactory]:
    """Opens stores of the parametrised kind, each on a database of its own (SQLite: a file;
    PostgreSQL: a schema) unless `shared`: then on the previous store's database, as another
    process would (the memory store: another handle on the same data). Closes them after."""
    opened: list[Store] = []
    places: list[str] = []

    def make(dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS, *, shared: bool = False) -> Store:
        store: Store
        if request.param == "memory":
            if shared:  # another handle on the same data, as another replica would have
                previous = opened[-1]
                assert isinstance(previous, MemoryStore)
                store = previous.sharing(dedupe_window_seconds=dedupe_window_seconds)
            else:
                store = MemoryStore(dedupe_window_seconds=dedupe_window_seconds, clock=clock)
        elif request.param == "sqlite":
            if not shared:
                places.append(str(tmp_path / f"store{len(places)}.sqlite3"))
            store = SQLiteStore(places[-1], dedupe_window_seconds=dedupe_window_seconds, clock=clock)
        else:
            from destination.delivery.postgres import PostgresStore

            if not shared:
                places.append(request.getfixturevalue("postgres_url"))
            store = PostgresStore(places[-1], dedupe_window_seconds=dedupe_window_seconds, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    return make_store()


async def claim_events(
    store: Store, now: float, limit: int, lease_seconds: float = 30.0, *, calls: int | None = None
) -> list[QueuedEvent]:
    """Every event of the claims `store.claim` hands out, in claim order."""
    budget = NO_BOUND if calls is None else Calls(calls, NO_BOUND.timeline)
    claims = await store.claim(now, limit, lease_seconds, budget)
    return [e for claim in claims for e in claim.events]


# ---- stores written by an older build (a migration's tests) ----


async def upgraded(store: Store, check: Callable[[Store], Awaitable[None]]) -> None:
    """Open (so migrate) `store`, run `check` on it, close it."""
    try:
        await check(store)
    finally:
        await store.close()


def sqlite_file_at(path: Path, version: int, statements: Sequence[str] = ()) -> SQLiteStore:
    """A SQLite file as a build at schema `version` left it (holding `statements`' rows), opened now."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert migrations.migrate_sqlite(conn, migrations.steps(MIGRATIONS), target=version) == version
        for statement in statements:
            conn.execute(statement)
    return SQLiteStore(path)


def postgres_schema_at(url: str, version: int, statements: Sequence[str] = ()) -> PostgresStore:
    """A PostgreSQL schema as a build at `version` left it (holding `statements`' rows), opened now."""
    steps = migrations.steps("postgres_migrations.sql")
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute(f"INSERT INTO schema_version (version) VALUES ({version})".encode())
        for step in steps[:version]:
            conn.execute(step.sql.encode())
        for statement in statements:
            conn.execute(statement.encode())
    return PostgresStore(url)
