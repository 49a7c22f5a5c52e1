"""Claims sized per budget class (store contract, every backend): each event's `cost`, set at
ingest, says what its delivery spends (sync, Timeline's own budget, both, none), so a claim made
while the sync budget is spent still takes counted events and Timeline activities."""

from __future__ import annotations

import dataclasses

import pytest

from destination.delivery.store import MAX_RUN_CALLS, Calls, Cost, NewEvent, Store, run_length
from destination.delivery.store_values import NO_BOUND
from tests.delivery.conftest import T0, event

pytestmark = pytest.mark.anyio

LEASE = 30.0


def costing(message_id: str, person: str, cost: Cost, *, at: float = T0, kind: str = "track") -> NewEvent:
    return dataclasses.replace(event(message_id, person, kind=kind, at=at), cost=cost)


async def claimed(store: Store, calls: int, timeline_calls: int | None) -> list[list[str]]:
    timeline = NO_BOUND.timeline if timeline_calls is None else timeline_calls
    claims = await store.claim(T0 + 10, 10, LEASE, Calls(calls, timeline))
    return [[e.message_id for e in claim.events] for claim in claims]


async def test_with_the_sync_budget_spent_counted_and_timeline_heads_are_claimed(store: Store) -> None:
    await store.enqueue(
        [
            costing("s0", "sam", "sync"),  # the oldest head: waits for the sync budget
            costing("n0", "nia", "none", at=T0 + 1),
            costing("t0", "tom", "timeline", at=T0 + 2),
            costing("b0", "bea", "both", at=T0 + 3),  # needs a sync call too
        ]
    )
    assert await claimed(store, 0, 0) == [["n0"]]
    assert await claimed(store, 0, 5) == [["t0"]]
    assert await claimed(store, 1, 1) == [["s0"]]  # one sync call: the oldest head's
    (event_b0,) = await store.find_events("b0")
    assert event_b0.state == "queued"


async def test_a_claim_s_events_carry_their_cost(store: Store) -> None:
    await store.enqueue([costing("t0", "tom", "timeline"), costing("t1", "tom", "both", at=T0 + 1)])
    (claim,) = await store.claim(T0 + 10, 10, LEASE)
    assert [(e.message_id, e.cost) for e in claim.events] == [("t0", "timeline"), ("t1", "both")]


async def test_a_run_takes_each_event_while_its_class_has_calls(store: Store) -> None:
    costs: list[Cost] = ["none", "timeline", "none", "timeline", "sync", "none"]
    await store.enqueue([costing(f"a{i}", "ada", c, at=T0 + i) for i, c in enumerate(costs)])
    # One Timeline call, no sync call: the run stops at the second activity.
    assert await claimed(store, 0, 1) == [["a0", "a1", "a2"]]


async def test_the_scan_goes_past_heads_it_cannot_pay_for(store: Store) -> None:
    """Older sync heads than the limit of heads read do not hide a counted one."""
    await store.enqueue([costing(f"s{i}", f"p{i}", "sync", at=T0 + i / 100) for i in range(12)])
    await store.enqueue([costing("n0", "nia", "none", at=T0 + 1)])
    assert await claimed(store, 0, 0) == [["n0"]]


def test_run_length_counts_each_class_and_a_stretch_of_identify_group_once() -> None:
    kinds = ["identify", "group", "track", "track", "track", "identify"]
    costs = ["sync", "sync", "timeline", "both", "none", "sync"]
    assert run_length(kinds, costs, Calls(10, 10)) == (6, Calls(3, 2))
    assert run_length(kinds, costs, Calls(1, 10)) == (3, Calls(1, 1))  # "both" needs a second sync
    assert run_length(kinds, costs, Calls(0, 10)) == (0, Calls(0, 0))  # the head needs a sync call
    many = ["track"] * 50
    assert run_length(many, ["none"] * 50, Calls(0, 0)) == (50, Calls(0, 0))
    assert run_length(many, ["both"] * 50, Calls(99, 99))[0] == MAX_RUN_CALLS // 2
