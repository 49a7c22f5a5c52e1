"""RateGovernor with an injected clock: fixed windows, shared counts, edges under skew, pools, blocks."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from destination.delivery.governor import (
    TRANSFORMER_POOL,
    RateGovernor,
    RateWindow,
    budget_pool,
    default_windows,
    timeline_governor,
    timeline_windows,
)
from destination.delivery.memory import MemoryStore
from destination.delivery.store import BudgetWindow, Store
from tests.delivery.conftest import FakeClock, StoreFactory

pytestmark = pytest.mark.anyio

MINUTE, DAY = 60.0, 86_400.0  # the default windows' lengths
MINUTE_START = 1_700_000_040.0  # a minute boundary (divisible by 60)


def governor(
    store: Store, clock: FakeClock, per_minute: int = 3, per_day: int = 5, guard: float = 0.0
) -> RateGovernor:
    return RateGovernor(store, default_windows(per_minute, per_day), guard_seconds=guard, clock=clock)


def test_windows_align_to_the_minute_and_the_utc_day() -> None:
    minute, day = default_windows()
    now = datetime(2024, 3, 9, 17, 45, 31, 250_000, tzinfo=UTC).timestamp()
    assert minute.start(now) == datetime(2024, 3, 9, 17, 45, tzinfo=UTC).timestamp()
    assert day.start(now) == datetime(2024, 3, 9, tzinfo=UTC).timestamp()
    assert day.end(now) == datetime(2024, 3, 10, tzinfo=UTC).timestamp()
    assert (minute.limit, day.limit) == (100, 50_000)


async def test_the_limit_is_granted_then_the_window_s_end_is_returned(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    rates = governor(make_store(), clock)
    now = MINUTE_START + 10
    assert [await rates.try_acquire("acme", now) for _ in range(4)] == [
        None,
        None,
        None,
        MINUTE_START + MINUTE,
    ]
    assert await rates.try_acquire("acme", MINUTE_START + MINUTE) is None


async def test_the_day_window_blocks_until_the_next_utc_day(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    rates = governor(make_store(), clock, per_minute=3, per_day=4)
    for _ in range(3):
        assert await rates.try_acquire("acme", MINUTE_START) is None
    assert await rates.try_acquire("acme", MINUTE_START + MINUTE) is None
    next_day = (MINUTE_START // DAY + 1) * DAY
    assert await rates.try_acquire("acme", MINUTE_START + 2 * MINUTE) == next_day
    assert await rates.try_acquire("acme", next_day) is None


async def test_processes_sharing_a_store_share_the_budget(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store()
    clock.now = MINUTE_START + 1
    replicas = [governor(store, clock, per_minute=10, per_day=1000) for _ in range(3)]
    answers = await asyncio.gather(*(r.try_acquire("acme", clock.now) for r in replicas for _ in range(8)))
    assert answers.count(None) == 10


async def test_a_large_budget_is_never_refused_at_a_window_edge(clock: FakeClock) -> None:
    rates = governor(MemoryStore(), clock, per_minute=100_000_000, per_day=10**9, guard=1.0)
    for offset in (-1.0, -0.5, -0.01, 0.0, 0.01, 0.4, 0.99, 1.0, 30.0):
        assert await rates.try_acquire("acme", MINUTE_START + offset) is None


async def test_away_from_the_edges_a_margin_is_kept_for_them(clock: FakeClock) -> None:
    rates = governor(MemoryStore(), clock, per_minute=100, per_day=10_000, guard=1.0)
    granted = [await rates.try_acquire("acme", MINUTE_START + 30) for _ in range(99)]
    assert granted[:98] == [None] * 98  # 100 less the margin of 2
    assert granted[98] == MINUTE_START + 59.0  # the margin opens at the edge band
    near_end = [await rates.try_acquire("acme", MINUTE_START + 59.5) for _ in range(3)]
    assert near_end == [None, None, MINUTE_START + MINUTE + 1.0]


async def test_a_call_near_an_edge_counts_in_both_windows(clock: FakeClock) -> None:
    rates = governor(MemoryStore(), clock, per_minute=10, per_day=10_000, guard=1.0)
    for _ in range(10):  # just before the boundary: may land in either minute
        assert await rates.try_acquire("acme", MINUTE_START + MINUTE - 0.5) is None
    assert await rates.try_acquire("acme", MINUTE_START + MINUTE + 0.5) == MINUTE_START + MINUTE + 1.0
    assert await rates.try_acquire("acme", MINUTE_START + MINUTE + 30) == MINUTE_START + 2 * MINUTE - 1.0


@pytest.mark.parametrize("skew", [-0.9, -0.4, 0.0, 0.4, 0.9])
async def test_gainsight_never_counts_more_than_the_limit_under_clock_skew(
    clock: FakeClock, skew: float
) -> None:
    """Callers every 2.9 s, and every 50 ms around each boundary, for three minutes; Gainsight's
    clock is `skew` s off ours. (Without the edge rule Gainsight would count 18-20 in a minute.)"""
    limit = 10
    rates = governor(MemoryStore(), clock, per_minute=limit, per_day=10_000, guard=1.0)
    granted = []
    offset = 1.0
    while offset < 3 * MINUTE:
        if await rates.try_acquire("acme", MINUTE_START + offset) is None:
            granted.append(MINUTE_START + offset)
        offset += 0.05 if not 0.5 <= offset % MINUTE <= 59.5 else 2.9
    per_gainsight_minute = Counter((t + skew) // MINUTE for t in granted)
    assert max(per_gainsight_minute.values()) <= limit
    assert len(granted) >= 3 * (limit - 1)  # and the budget is used


async def test_transformer_calls_spend_at_most_half_of_a_window(clock: FakeClock) -> None:
    rates = governor(MemoryStore(), clock, per_minute=10, per_day=1000)
    with budget_pool(TRANSFORMER_POOL):
        transformer = [await rates.try_acquire("acme", MINUTE_START + 5) for _ in range(6)]
    assert transformer == [None] * 5 + [MINUTE_START + MINUTE]
    delivery = [await rates.try_acquire("acme", MINUTE_START + 5) for _ in range(6)]
    assert delivery == [None] * 5 + [MINUTE_START + MINUTE]


async def test_budget_is_taken_in_blocks_when_it_is_large(clock: FakeClock) -> None:
    store = MemoryStore()
    takes: list[int] = []
    original = store.take_budget

    async def counting(tenant: str, windows: Sequence[BudgetWindow], calls: int = 1) -> str | None:
        takes.append(calls)
        return await original(tenant, windows, calls)

    store.take_budget = counting  # type: ignore[method-assign]
    rates = governor(store, clock, per_minute=100_000, per_day=10**7, guard=1.0)
    for _ in range(100):
        assert await rates.try_acquire("acme", MINUTE_START + 10) is None
    assert takes == [64, 64]  # two store transactions for 100 calls


async def test_blocks_never_exceed_the_budget_across_processes(clock: FakeClock) -> None:
    store = MemoryStore()
    replicas = [governor(store, clock, per_minute=6_400, per_day=10**7, guard=1.0) for _ in range(3)]
    granted = 0
    for _ in range(3_000):
        for rates in replicas:
            granted += await rates.try_acquire("acme", MINUTE_START + 10) is None
    margin = 128
    assert 6_400 - margin - 3 * 63 <= granted <= 6_400 - margin


async def test_a_full_window_sends_the_caller_past_the_next_guard_band(clock: FakeClock) -> None:
    rates = governor(MemoryStore(), clock, per_minute=1, guard=1.0)
    assert await rates.try_acquire("acme", MINUTE_START + 30) is None
    assert await rates.try_acquire("acme", MINUTE_START + 30) == MINUTE_START + MINUTE + 1.0


@pytest.mark.parametrize(
    ("windows", "guard", "message"),
    [
        ((), 0.0, "at least one window"),
        ((RateWindow("minute", 60, 1), RateWindow("minute", 120, 1)), 0.0, "unique"),
        ((RateWindow("fast", 2.0, 5),), 0.5, "guard_seconds"),
        ((RateWindow("minute", 60, 1),), -1.0, "guard_seconds"),
    ],
)
def test_inconsistent_governors_are_rejected(
    windows: tuple[RateWindow, ...], guard: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RateGovernor(MemoryStore(), windows, guard_seconds=guard)


@pytest.mark.parametrize(("length", "limit"), [(0.0, 1), (60.0, 0), (3 * DAY, 1)])
def test_nonsense_windows_are_rejected(length: float, limit: int) -> None:
    with pytest.raises(ValueError, match="rate window"):
        RateWindow("w", length, limit)


async def test_timeline_takes_one_call_of_the_shared_day_per_activity(clock: FakeClock) -> None:
    store = MemoryStore()
    rates = timeline_governor(store, timeline_windows(200, 50_000, True, 60.0, 86_400.0), guard_seconds=1.0)
    for minute in range(10):  # one activity a minute: a block of two would count 20 in the day
        assert await rates.try_acquire("acme", MINUTE_START + 60 * minute + 10) is None
    day_start = (MINUTE_START // 86_400) * 86_400
    assert (await store.budget_used("acme", [("day", day_start)]))["day"] == 10
