"""The events' cost (SQLite step 8, PostgreSQL step 6): an event queued before it is sized as a
sync call, as it was then, and waits for the sync budget like before."""

from __future__ import annotations

from pathlib import Path

import pytest

from destination.delivery.store import Store
from destination.delivery.store_values import Calls
from tests.delivery.conftest import T0, postgres_schema_at, sqlite_file_at, upgraded

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
    store = sqlite_file_at(tmp_path / "v7.sqlite3", 7, [OLD_INSERT.format(payload="X'7B7D'")])
    await upgraded(store, sized_as_sync)


async def test_an_event_of_a_postgresql_schema_before_step_6_costs_a_sync_call(postgres_url: str) -> None:
    store = postgres_schema_at(postgres_url, 5, [OLD_INSERT.format(payload="'\\x7b7d'::bytea")])
    await upgraded(store, sized_as_sync)
