"""Rate-window counting in the store (take_budget). Both stores."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from destination.delivery.store import Store
from tests.delivery.conftest import StoreFactory

pytestmark = pytest.mark.anyio


def windows(minute_start: float, day_start: float = 0.0) -> list[tuple[str, float, int]]:
    return [("minute", minute_start, 3), ("day", day_start, 5)]


async def test_exactly_the_limit_is_granted_in_a_window(store: Store) -> None:
    answers = [await store.take_budget("acme", windows(60.0)) for _ in range(4)]
    assert answers == [None, None, None, "minute"]
    assert await store.take_budget("acme", windows(120.0)) is None


async def test_a_refused_call_is_counted_in_no_window(store: Store) -> None:
    granted = 0
    for minute in range(1, 5):
        for _ in range(4):  # one more than the minute allows
            granted += await store.take_budget("acme", windows(60.0 * minute)) is None
    assert granted == 5  # the day's limit: refusals by the minute window took nothing from it
    assert await store.take_budget("acme", windows(600.0)) == "day"
    assert await store.take_budget("acme", windows(600.0, day_start=86_400.0)) is None


async def test_several_calls_are_taken_all_or_none(store: Store) -> None:
    assert await store.take_budget("acme", windows(60.0), calls=2) is None
    assert await store.take_budget("acme", windows(60.0), calls=2) == "minute"  # 1 left of 3
    assert await store.take_budget("acme", windows(60.0)) is None
    assert await store.take_budget("acme", windows(120.0), calls=3) == "day"  # 2 left of 5
    assert await store.take_budget("acme", windows(120.0), calls=2) is None


async def test_tenants_have_separate_budgets(store: Store) -> None:
    for _ in range(3):
        assert await store.take_budget("acme", windows(60.0)) is None
    assert await store.take_budget("acme", windows(60.0)) == "minute"
    assert await store.take_budget("globex", windows(60.0)) is None


def take_from_threads(stores: list[Store], threads: int, calls_each: int, limit: int) -> int:
    """Threads, each with its own event loop, call take_budget at once; returns how many were granted."""
    granted = 0
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(store: Store) -> Callable[[], None]:
        async def take_all() -> int:
            return sum(
                [
                    await store.take_budget("acme", [("minute", 60.0, limit)]) is None
                    for _ in range(calls_each)
                ]
            )

        def run() -> None:
            nonlocal granted
            start.wait()
            n = asyncio.run(take_all())
            with lock:
                granted += n

        return run

    pool = [threading.Thread(target=worker(stores[i % len(stores)])) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return granted


async def test_concurrent_takers_never_exceed_the_limit(make_store: StoreFactory) -> None:
    stores = [make_store(), *(make_store(shared=True) for _ in range(3))]  # as four processes would

    async def take_all(store: Store) -> int:
        return sum([await store.take_budget("acme", [("minute", 60.0, 100)]) is None for _ in range(40)])

    granted = await asyncio.gather(*(take_all(stores[i % 4]) for i in range(8)))
    assert sum(granted) == 100


async def test_concurrent_takers_in_threads_never_exceed_the_limit(make_store: StoreFactory) -> None:
    store = make_store()
    if type(store).__name__ == "PostgresStore":
        pytest.skip("a PostgresStore belongs to one event loop; processes share it by URL (test above)")
    granted = await asyncio.to_thread(take_from_threads, [store], 8, 40, 100)
    assert granted == 100


async def test_one_window_name_counted_at_two_starts_needs_room_in_both(store: Store) -> None:
    # A call near a window's edge is counted in both windows it may land in.
    edge = [("minute", 60.0, 2), ("minute", 120.0, 2)]
    assert await store.take_budget("acme", [("minute", 120.0, 2)]) is None
    assert await store.take_budget("acme", [("minute", 120.0, 2)]) is None
    assert await store.take_budget("acme", edge) == "minute"  # 60 has room, 120 has none
    assert await store.take_budget("acme", [("minute", 60.0, 2)], 2) is None  # nothing was counted
