"""The events' cost (SQLite step 8, PostgreSQL step 6): an event queued before it is sized as a
sync call, as it was then, and waits for the sync budget like before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from destination.delivery import migrations
from destination.delivery.postgres import PostgresStore
from destination.delivery.sqlite import MIGRATIONS, SQLiteStore
from destination.delivery.store import Store
from destination.delivery.store_values import Calls
from tests.delivery.conftest import T0

pytestmark = pytest.mark.anyio

OLD_INSERT = (
    "INSERT INTO events (destination_id, message_id, ordering_key, kind, payload, received_at, state, head,"
    " available_at) VALUES ('acme', 'm1', 'userId:u1', 'track', {payload}, 1.0, 'queued', true, 1.0)"
)


async def sized_as_sync(store: Store) -> None:
    (found,) = await store.find_events("m1")
    assert found.state == "queued"
    assert await store.claim(T0, 10, 30.0, Calls(0, 5)) == []  # needs a sync call
    (claim,) = await store.claim(T0, 10, 30.0, Calls(1, 0))
    assert [(e.message_id, e.cost) for e in claim.events] == [("m1", "sync")]


async def test_an_event_of_a_sqlite_file_before_step_8_costs_a_sync_call(tmp_path: Path) -> None:
    path = tmp_path / "v7.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert migrations.migrate_sqlite(conn, migrations.steps(MIGRATIONS), target=7) == 7
        conn.execute(OLD_INSERT.format(payload="X'7B7D'"))
    store = SQLiteStore(path)
    try:
        await sized_as_sync(store)
    finally:
        await store.close()


async def test_an_event_of_a_postgresql_schema_before_step_6_costs_a_sync_call(postgres_url: str) -> None:
    steps = migrations.steps("postgres_migrations.sql")
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (5)")
        for step in steps[:5]:
            conn.execute(step.sql.encode())
        conn.execute(OLD_INSERT.format(payload="'\\x7b7d'::bytea").encode())
    store = PostgresStore(postgres_url)
    try:
        await sized_as_sync(store)
    finally:
        await store.close()
