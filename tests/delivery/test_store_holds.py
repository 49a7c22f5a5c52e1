"""hold_companies: while a company name is held, another holder of that name (another replica on a
PostgreSQL store) waits; names compare casefolded; other names and tenants do not wait."""

from __future__ import annotations

import asyncio

import pytest

from destination.delivery.store import Store
from tests.delivery.conftest import StoreFactory

pytestmark = pytest.mark.anyio


async def hold_after(store: Store, scope: str, names: list[str], log: list[str], tag: str) -> None:
    async with store.hold_companies(scope, names):
        log.append(tag)


async def test_a_held_name_waits_for_its_holder(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store(shared=True)
    log: list[str] = []
    async with first.hold_companies("acme.gainsightcloud.com", ["Acme Inc", "Beta"]):
        waiting = asyncio.create_task(
            hold_after(second, "acme.gainsightcloud.com", ["ACME inc"], log, "second")
        )
        await asyncio.sleep(0.3)
        log.append("first released")
    await asyncio.wait_for(waiting, 10)
    assert log == ["first released", "second"]


async def test_other_names_and_tenants_do_not_wait(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store(shared=True)
    log: list[str] = []
    async with first.hold_companies("acme.gainsightcloud.com", ["Acme Inc"]):
        await asyncio.wait_for(hold_after(second, "globex.gainsightcloud.com", ["Acme Inc"], log, "t"), 5)
        await asyncio.wait_for(hold_after(second, "acme.gainsightcloud.com", ["Gamma"], log, "n"), 5)
        await asyncio.wait_for(hold_after(second, "acme.gainsightcloud.com", [], log, "none"), 5)
    assert log == ["t", "n", "none"]


async def test_holders_of_overlapping_sets_in_any_order_do_not_deadlock(make_store: StoreFactory) -> None:
    stores = [make_store(), make_store(shared=True)]
    log: list[str] = []
    names = [["A", "B", "C"], ["C", "B", "A"], ["b", "d"], ["D", "a"]]
    await asyncio.wait_for(
        asyncio.gather(*(hold_after(stores[i % 2], "t", n, log, str(i)) for i, n in enumerate(names))), 10
    )
    assert sorted(log) == ["0", "1", "2", "3"]


async def test_a_postgresql_hold_goes_with_its_connection(make_store: StoreFactory) -> None:
    first = make_store()
    if type(first).__name__ != "PostgresStore":
        pytest.skip("only PostgreSQL holds names across processes")
    import psycopg

    second = make_store(shared=True)
    log: list[str] = []
    url = first._pool.conninfo  # type: ignore[attr-defined]
    holder = first.hold_companies("t", ["Acme"])
    await holder.__aenter__()
    waiting = asyncio.create_task(hold_after(second, "t", ["acme"], log, "second"))
    await asyncio.sleep(0.3)
    assert log == []
    # The holder's process dies: its connection ends, and the server drops its locks.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        )
    await asyncio.wait_for(waiting, 10)
    assert log == ["second"]
    await holder.__aexit__(None, None, None)  # releasing on a dead connection is no error
