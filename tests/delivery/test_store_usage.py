"""Usage counts in the store (usage_store.py), on every backend: once per messageId, rows due until
written, shared by replicas, pruned with their retention."""

from __future__ import annotations

import asyncio

import pytest

from destination.delivery.store import Store
from destination.delivery.usage_store import UNATTRIBUTED, USAGE_COUNTED_RETENTION_SECONDS, UsageKey, utc_day
from tests.delivery.conftest import T0, StoreFactory, event

pytestmark = pytest.mark.anyio

DAY = utc_day(T0)
KEY = UsageKey("1P02" + "A" * 32, DAY, "Report Exported")
OTHER = UsageKey("1P02" + "B" * 32, DAY, "Report Exported")


async def count(store: Store, key: UsageKey, *ids: str) -> list[bool]:
    return [await store.count_usage("acme", i, key, T0) for i in ids]


async def test_a_message_id_counts_once(store: Store) -> None:
    assert await count(store, KEY, "m1", "m2", "m1", "m2", "m3") == [True, True, False, False, True]
    [row] = await store.usage_rows("acme", [KEY])
    assert (row.count, row.written, row.known, row.held) == (3, 0, False, False)


async def test_a_message_id_is_counted_per_destination(store: Store) -> None:
    assert await store.count_usage("acme", "m1", KEY, T0)
    assert await store.count_usage("other", "m1", KEY, T0)
    assert [r.count for r in await store.usage_rows("acme", [KEY])] == [1]


async def test_rows_are_due_until_written_and_again_once_counted_further(store: Store) -> None:
    await count(store, KEY, "m1", "m2")
    await count(store, OTHER, "m3")
    assert {r.key: r.count for r in await store.usage_due("acme", 10)} == {KEY: 2, OTHER: 1}
    await store.usage_written("acme", [(KEY, 2), (OTHER, 1)], T0 + 5)
    assert await store.usage_due("acme", 10) == []
    await count(store, KEY, "m4")
    [due] = await store.usage_due("acme", 10)
    assert (due.key, due.count, due.written, due.known) == (KEY, 3, 2, True)
    assert await store.last_usage_write("acme") == T0 + 5


async def test_a_count_written_while_another_arrived_stays_due(store: Store) -> None:
    await count(store, KEY, "m1", "m2")
    [row] = await store.usage_due("acme", 10)
    await count(store, KEY, "m3")  # while the flush was out
    await store.usage_written("acme", [(row.key, row.count)], T0)
    assert [(r.count, r.written) for r in await store.usage_due("acme", 10)] == [(3, 2)]


async def test_held_rows_are_left_out_until_written(store: Store) -> None:
    await count(store, KEY, "m1")
    await store.usage_held("acme", [KEY], True)
    assert await store.usage_due("acme", 10) == []
    await store.usage_written("acme", [(KEY, 1)], T0)
    [row] = await store.usage_rows("acme", [KEY])
    assert not row.held and row.known and row.written == 1


async def test_found_rows_are_known(store: Store) -> None:
    await count(store, KEY, "m1")
    await store.usage_found("acme", [KEY])
    [row] = await store.usage_due("acme", 10)
    assert row.known and row.written == 0


async def test_unattributed_events_are_counted_never_due(store: Store) -> None:
    unattributed = UsageKey(UNATTRIBUTED, DAY, "Report Exported")
    await count(store, unattributed, "m1", "m2")
    assert await store.usage_due("acme", 10) == []
    assert [(r.key, r.count) for r in await store.usage_of_day("acme", DAY)] == [(unattributed, 2)]


async def test_the_day_view_holds_one_day(store: Store) -> None:
    tomorrow = UsageKey(KEY.company, utc_day(T0 + 86_400), KEY.metric)
    await count(store, KEY, "m1")
    await count(store, tomorrow, "m2")
    assert [r.key for r in await store.usage_of_day("acme", DAY)] == [KEY]


async def test_prune_forgets_rows_after_their_days_and_counted_ids_only_after_those(
    make_store: StoreFactory,
) -> None:
    store = make_store(dedupe_window_seconds=100.0)
    old = UsageKey(KEY.company, utc_day(T0 - 40 * 86_400), KEY.metric)
    await count(store, KEY, "m1")
    await count(store, old, "m2")
    await store.prune(T0 + 101)
    assert [r.key for r in await store.usage_rows("acme", [KEY, old])] == [KEY]
    # Past the dedupe window, a replayed dead letter of a day still counted is not counted again
    assert not await store.count_usage("acme", "m1", KEY, T0 + 101)
    await store.prune(T0 + USAGE_COUNTED_RETENTION_SECONDS + 1)
    assert await store.count_usage("acme", "m1", KEY, T0 + 101)  # its id is forgotten with its day


async def test_counted_events_are_pruned_like_delivered_ones(make_store: StoreFactory) -> None:
    store = make_store(dedupe_window_seconds=100.0)
    await store.enqueue([event("m1")])
    [claim] = await store.claim(T0, 10, 30.0)
    assert await store.complete(claim.events[0].id, "counted", lease=claim.lease)
    assert (await store.counts())["counted"] == 1
    assert await store.prune(T0 + 101) == 1


async def test_replicas_count_one_row_exactly(make_store: StoreFactory) -> None:
    first = make_store()
    second = make_store(shared=True)
    ids = [f"m{i}" for i in range(60)]
    results = await asyncio.gather(
        *(store.count_usage("acme", i, KEY, T0) for i in ids for store in (first, second))
    )
    assert sum(results) == 60
    assert [r.count for r in await second.usage_rows("acme", [KEY])] == [60]
