"""hold: while a key (a company name, a person's email) is held, another holder of that key (another
replica on a PostgreSQL store) waits; keys compare casefolded; other keys, kinds and tenants do not
wait."""

from __future__ import annotations

import asyncio

import pytest

from destination.delivery.holds import HoldKind
from destination.delivery.store import Store
from tests.delivery.conftest import StoreFactory

pytestmark = pytest.mark.anyio


async def hold_after(
    store: Store, scope: str, names: list[str], log: list[str], tag: str, kind: HoldKind = "company"
) -> None:
    async with store.hold(scope, kind, names):
        log.append(tag)


async def until_one_waits(store: Store) -> None:
    """Until a holder is queued behind another's hold on `store`'s database: observed, not
    assumed after a sleep, so a hold that never blocks fails however slow the machine."""
    for _ in range(400):
        if await _waiting(store):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("no holder waited")


async def _waiting(store: Store) -> int:
    if type(store).__name__ == "MemoryStore":
        return int(store._t.holds.waiting())  # type: ignore[attr-defined]
    if type(store).__name__ != "PostgresStore":
        return int(store._holds.waiting())  # type: ignore[attr-defined]
    import psycopg

    url = store._pool.conninfo  # type: ignore[attr-defined]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).fetchone()
    return int(row[0]) if row else 0


async def test_a_held_name_waits_for_its_holder(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store(shared=True)
    log: list[str] = []
    async with first.hold("acme.gainsightcloud.com", "company", ["Acme Inc", "Beta"]):
        waiting = asyncio.create_task(
            hold_after(second, "acme.gainsightcloud.com", ["ACME inc"], log, "second")
        )
        await until_one_waits(second)
        log.append("first released")
    await asyncio.wait_for(waiting, 10)
    assert log == ["first released", "second"]


async def test_a_held_email_waits_for_its_holder(make_store: StoreFactory) -> None:
    """Two userIds whose events write one email: the second upsert waits for the first."""
    first, second = make_store(), make_store(shared=True)
    log: list[str] = []
    async with first.hold("acme.gainsightcloud.com", "person", ["Ada@Example.com"]):
        waiting = asyncio.create_task(
            hold_after(second, "acme.gainsightcloud.com", ["ada@example.COM"], log, "second", "person")
        )
        await until_one_waits(second)
        log.append("first released")
    await asyncio.wait_for(waiting, 10)
    assert log == ["first released", "second"]


async def test_a_person_and_a_company_of_one_spelling_do_not_wait_for_each_other(
    make_store: StoreFactory,
) -> None:
    first, second = make_store(), make_store(shared=True)
    log: list[str] = []
    async with first.hold("t", "person", ["billing@acme.com"]):
        await asyncio.wait_for(hold_after(second, "t", ["billing@acme.com"], log, "company"), 5)
    async with first.hold("t", "company", ["billing@acme.com"]):
        await asyncio.wait_for(hold_after(second, "t", ["billing@acme.com"], log, "person", "person"), 5)
    assert log == ["company", "person"]


async def test_other_names_and_tenants_do_not_wait(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store(shared=True)
    log: list[str] = []
    async with first.hold("acme.gainsightcloud.com", "company", ["Acme Inc"]):
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
    holder = first.hold("t", "company", ["Acme"])
    await holder.__aenter__()
    waiting = asyncio.create_task(hold_after(second, "t", ["acme"], log, "second"))
    await until_one_waits(second)
    assert log == []
    # The holder's process dies: its connection ends, and the server drops its locks.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        )
    await asyncio.wait_for(waiting, 10)
    assert log == ["second"]
    await holder.__aexit__(None, None, None)  # releasing on a dead connection is no error


async def test_a_postgresql_holder_whose_connection_drops_while_waiting_gets_a_store_error(
    make_store: StoreFactory,
) -> None:
    first = make_store()
    if type(first).__name__ != "PostgresStore":
        pytest.skip("only PostgreSQL holds keys across processes")
    import psycopg

    from destination.delivery.store import StoreUnavailableError

    second = make_store(shared=True)
    url = first._pool.conninfo  # type: ignore[attr-defined]
    async with first.hold("t", "person", ["ada@example.com"]):
        waiting = asyncio.create_task(hold_after(second, "t", ["ada@example.com"], [], "x", "person"))
        await until_one_waits(second)
        # The server drops the waiting replica's connection (a failover, a restart).
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        with pytest.raises(StoreUnavailableError):
            await asyncio.wait_for(waiting, 10)
