"""Several processes on one store (replicas on PostgreSQL, processes on one SQLite file; the memory
store shares itself): concurrent claims take each event once and keep each person's order,
concurrent enqueues store each messageId once, and enqueues racing with finishes never leave a
person without a claimable head."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from destination.delivery.store import Store
from tests.delivery.conftest import T0, StoreFactory, event

pytestmark = pytest.mark.anyio

LEASE = 60.0


def replicas(make_store: StoreFactory, n: int = 4) -> list[Store]:
    return [make_store(), *(make_store(shared=True) for _ in range(n - 1))]


async def drain(store: Store, done: list[str], now: float = T0 + 1) -> None:
    """Claim and complete until nothing is left to claim (twice in a row, as others may finish)."""
    idle = 0
    while idle < 2:
        claims = await store.claim(now, 3, LEASE)
        if not claims:
            idle += 1
            await asyncio.sleep(0.02)
            continue
        idle = 0
        for claim in claims:
            for queued in claim.events:
                assert await store.complete(queued.id, "delivered", lease=claim.lease)
                done.append(queued.message_id)


async def test_concurrent_claimers_take_each_event_once_in_each_persons_order(
    make_store: StoreFactory,
) -> None:
    stores = replicas(make_store)
    sent = [event(f"m{i:03d}", f"p{i % 20}", kind="track") for i in range(200)]
    await stores[0].enqueue(sent)
    done: list[str] = []
    await asyncio.gather(*(drain(store, done) for store in stores))
    assert sorted(done) == sorted(e.message_id for e in sent)  # each exactly once
    for person in {e.ordering_key for e in sent}:
        mine = [e.message_id for e in sent if e.ordering_key == person]
        assert [m for m in done if m in set(mine)] == mine


async def test_concurrent_enqueues_store_each_message_id_once(make_store: StoreFactory) -> None:
    stores = replicas(make_store)
    batches = [[event(f"m{(s * 7 + i) % 60}", f"p{i % 5}") for i in range(40)] for s in range(8)]
    answers = await asyncio.gather(*(stores[s % 4].enqueue(b) for s, b in enumerate(batches)))
    stored = [
        e.message_id for b, a in zip(batches, answers, strict=True) for e, ok in zip(b, a, strict=True) if ok
    ]
    assert sorted(stored) == sorted({e.message_id for b in batches for e in b})
    assert (await stores[0].counts())["queued"] == len(stored)


async def test_enqueues_racing_with_finishes_never_strand_a_person(make_store: StoreFactory) -> None:
    stores = replicas(make_store)
    serial = itertools.count()
    sent: list[str] = []

    async def ingest(store: Store) -> None:
        for _ in range(15):
            batch = [event(f"m{next(serial)}", f"p{n % 3}", kind="track") for n in range(4)]
            sent.extend(e.message_id for e in batch)
            await store.enqueue(batch)
            await asyncio.sleep(0)

    done: list[str] = []
    await asyncio.gather(*(ingest(s) for s in stores[:2]), *(drain(s, done) for s in stores[2:]))
    await drain(stores[0], done)  # whatever the racing drains left: all claimable, none stranded
    assert sorted(done) == sorted(sent)
    counts = await stores[0].counts()
    assert counts["queued"] == counts["leased"] == 0
