"""RateGovernor.calls_left: exactly what try_acquire would still grant, so that the dispatcher
claims no events the budget would put back (edges under skew and blocks included)."""

from __future__ import annotations

import pytest

from destination.delivery.governor import RateGovernor, default_windows
from destination.delivery.store import Store
from tests.delivery.conftest import FakeClock, StoreFactory

pytestmark = pytest.mark.anyio

MINUTE_START = 1_700_000_040.0  # a minute boundary (divisible by 60)


async def granted(rates: RateGovernor, now: float) -> int:
    """How many calls try_acquire grants at `now`, asking until it refuses."""
    n = 0
    while await rates.try_acquire("acme", now) is None:
        n += 1
    return n


def governor(store: Store, clock: FakeClock, per_minute: int, guard: float) -> RateGovernor:
    return RateGovernor(store, default_windows(per_minute, 50_000), guard_seconds=guard, clock=clock)


@pytest.mark.parametrize("spent", [0, 3, 9])
async def test_calls_left_is_what_would_be_granted_away_from_the_edges(
    make_store: StoreFactory, clock: FakeClock, spent: int
) -> None:
    rates = governor(make_store(), clock, per_minute=10, guard=1.0)  # margin 1: 9 away from edges
    now = MINUTE_START + 30
    for _ in range(spent):
        assert await rates.try_acquire("acme", now) is None
    left = await rates.calls_left("acme", now)
    assert left == 9 - spent == await granted(rates, now)


async def test_at_the_start_of_a_window_the_previous_one_must_have_room_too(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    rates = governor(make_store(), clock, per_minute=10, guard=1.0)
    assert await granted(rates, MINUTE_START + 30) == 9
    assert await granted(rates, MINUTE_START + 59.5) == 1  # the edge band spends the margin
    early = MINUTE_START + 60.2  # counted in both minutes: the one before is full
    assert await rates.calls_left("acme", early) == 0 == await granted(rates, early)
    later = MINUTE_START + 61  # the edge call was counted in this minute too
    assert await rates.calls_left("acme", later) == 8 == await granted(rates, later)


async def test_a_block_held_by_this_process_counts_as_left(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    rates = governor(make_store(), clock, per_minute=10_000, guard=0.0)  # blocks of 64 calls
    now = MINUTE_START + 30
    assert await rates.try_acquire("acme", now) is None  # takes a block, hands out one
    left = await rates.calls_left("acme", now)
    assert left == 10_000 - 1


async def test_next_room_at_is_when_a_spent_window_may_grant_again(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    rates = governor(make_store(), clock, per_minute=10, guard=1.0)
    now = MINUTE_START + 30
    assert await granted(rates, now) == 9
    opens = rates.next_room_at(now)
    assert opens == MINUTE_START + 59  # the edge band, where the margin is spent
    assert await granted(rates, opens - 0.01) == 0 < await granted(rates, opens)
    assert rates.next_room_at(MINUTE_START + 60.2) == MINUTE_START + 61  # after the start band
