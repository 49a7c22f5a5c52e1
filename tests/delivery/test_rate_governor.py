"""RateGovernor with an injected clock: fixed windows, shared counts, guard band."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from destination.delivery.governor import DAY, MINUTE, RateGovernor, RateWindow, default_windows
from destination.delivery.memory import MemoryStore
from destination.delivery.store import Store
from tests.delivery.conftest import FakeClock, StoreFactory

pytestmark = pytest.mark.anyio

MINUTE_START = 1_700_000_040.0  # a minute boundary (divisible by 60)


def governor(
    store: Store, clock: FakeClock, per_minute: int = 3, per_day: int = 5, guard: float = 0.0
) -> RateGovernor:
    return RateGovernor(
        store, default_windows(per_minute, per_day), guard_seconds=guard, clock=clock, sleep=clock.sleep
    )


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


async def test_acquire_sleeps_until_a_window_has_room(make_store: StoreFactory, clock: FakeClock) -> None:
    clock.now = MINUTE_START + 50
    rates = governor(make_store(), clock, per_minute=2, per_day=100)
    for _ in range(5):
        await rates.acquire("acme")
    assert clock.now == MINUTE_START + 2 * MINUTE
    assert clock.slept == [10.0, 60.0]


async def test_processes_sharing_a_store_share_the_budget(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store()
    clock.now = MINUTE_START + 1
    replicas = [governor(store, clock, per_minute=10, per_day=1000) for _ in range(3)]
    answers = await asyncio.gather(*(r.try_acquire("acme", clock.now) for r in replicas for _ in range(8)))
    assert answers.count(None) == 10


async def test_no_call_starts_in_the_guard_band_at_either_edge_of_a_window(clock: FakeClock) -> None:
    rates = governor(MemoryStore(), clock, per_minute=100, guard=1.0)
    assert await rates.try_acquire("acme", MINUTE_START + 0.4) == MINUTE_START + 1.0
    assert await rates.try_acquire("acme", MINUTE_START + 59.5) == MINUTE_START + 61.0
    assert await rates.try_acquire("acme", MINUTE_START + 1.0) is None
    assert await rates.try_acquire("acme", MINUTE_START + 59.0) is None


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


class SlowStore(MemoryStore):
    """A store whose rate-window count takes 0.6 s (a loaded database, a pool queue)."""

    async def take_budget(self, *args: Any, **kwargs: Any) -> str | None:
        await asyncio.sleep(0.6)
        return await super().take_budget(*args, **kwargs)


async def test_a_grant_too_late_for_its_window_is_not_used() -> None:
    rates = RateGovernor(SlowStore(), (RateWindow("minute", 60, 100),), guard_seconds=1.0)
    # Asked at :59.0 (allowed), granted at :59.6: the call would reach Gainsight in the next window.
    assert await rates.try_acquire("acme", MINUTE_START + 59.0) == MINUTE_START + 61.0
    assert await rates.try_acquire("acme", MINUTE_START + 30.0) is None  # well inside: used
