"""The dispatcher (`Deliverer.run`): a person's backlog is claimed in runs, not one event per
claim cycle; claims are sized by the rate budget left; order holds inside a claim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from destination.delivery.store import MAX_RUN_CALLS, Claim, NewEvent
from destination.delivery.worker import Deliverer
from destination.jsonutil import dumps
from tests.unit.test_worker import NOW, TRACK, World, ok


def tracks(world: World, n: int, people: int) -> list[NewEvent]:
    payloads = [dumps({**TRACK, "properties": {"n": i}}) for i in range(n)]
    return [NewEvent("acme", f"m{i}", f"p{i % people}", "track", payloads[i], world.now) for i in range(n)]


class Counted:
    """Counts the dispatcher's claims (those that found work), idle waits and put-backs."""

    def __init__(self, world: World) -> None:
        self.claims: list[int] = []
        self.idle_waits = 0
        self.put_back = 0
        store, deliverer = world.store, world.deliverer
        claim, idle, retry_later = store.claim, deliverer._idle, store.retry_later

        async def counted_claim(*args: Any, **kwargs: Any) -> list[Claim]:
            claims = await claim(*args, **kwargs)
            if claims:
                self.claims.append(sum(len(c.events) for c in claims))
            return claims

        async def counted_idle() -> None:
            self.idle_waits += 1
            await idle()

        async def counted_retry_later(*args: Any, **kwargs: Any) -> bool:
            self.put_back += 1
            return await retry_later(*args, **kwargs)

        store.claim = counted_claim  # type: ignore[method-assign]
        deliverer._idle = counted_idle  # type: ignore[method-assign]
        store.retry_later = counted_retry_later  # type: ignore[method-assign]


async def dispatch_until(deliverer: Deliverer, done: Callable[[], Awaitable[bool]]) -> None:
    """Run the dispatcher until `done` (polled; generous deadline), then stop it."""
    runner = asyncio.create_task(deliverer.run())
    deadline = time.monotonic() + 60
    try:
        while not await done():
            assert time.monotonic() < deadline, "the dispatcher did not get there in 60 s"
            await asyncio.sleep(0.01)
    finally:
        await deliverer.stop()
        await runner


def test_a_person_s_backlog_is_claimed_in_runs_not_one_event_per_cycle() -> None:
    world = World(ok, per_minute=1_000)
    counted = Counted(world)

    async def scenario() -> None:
        await world.store.enqueue(tracks(world, 50, people=1))

        async def delivered() -> bool:
            return (await world.store.counts())["delivered"] == 50

        await dispatch_until(world.deliverer, delivered)

    asyncio.run(scenario())
    # Claims of MAX_RUN_CALLS tracks, where each track was a claim and a cycle of its own.
    assert counted.claims == [MAX_RUN_CALLS] * (50 // MAX_RUN_CALLS) + [50 % MAX_RUN_CALLS]
    assert counted.idle_waits < 10  # far fewer than one per event
    assert [_n(request) for request in world.calls] == list(range(50))  # in the person's order


def test_claims_are_sized_by_the_budget_left_nothing_is_put_back() -> None:
    world = World(ok, per_minute=5)
    counted = Counted(world)

    async def scenario() -> dict[str, int]:
        await world.store.enqueue(tracks(world, 30, people=30))

        async def budget_spent() -> bool:
            counts = await world.store.counts()
            # ... and the dispatcher has read it so (after the batch, on a loaded machine)
            return len(world.calls) == 5 and counts["leased"] == 0 and world.deliverer._budget_pause() > 0

        await dispatch_until(world.deliverer, budget_spent)
        return dict(await world.store.counts())

    counts = asyncio.run(scenario())
    assert counted.claims == [5]  # not 30 claimed and 25 put back until the next window
    assert counted.put_back == 0
    assert (counts["delivered"], counts["queued"]) == (5, 25)
    assert world.deliverer._budget_pause() == pytest.approx(30.0)  # no claim until the minute ends


def test_a_failed_track_holds_the_person_s_later_tracks_claimed_with_it() -> None:
    answers = [httpx.Response(503, json={"result": False})]

    def flaky(request: httpx.Request) -> httpx.Response:
        if _n(request) == 1 and answers:
            return answers.pop()
        return ok(request)

    world = World(flaky)
    events = world.run(*({**TRACK, "properties": {"n": i}} for i in range(3)))
    assert [e.state for e in events] == ["delivered", "queued", "queued"]
    assert [_n(r) for r in world.calls] == [0, 1]  # the third waited behind the second
    assert [a.outcome for a in events[2].history] == []  # put back untried: no attempt
    events = world.later(600)
    assert [e.state for e in events] == ["delivered"] * 3
    assert [_n(r) for r in world.calls] == [0, 1, 1, 2]


def _n(request: httpx.Request) -> int:
    """The `n` property of a track call's event."""
    body = httpx.Response(200, content=request.content).json()
    return int(body["properties"]["n"] if "properties" in body else body["n"])


def test_a_plentiful_budget_is_read_once_a_second_not_before_every_claim() -> None:
    world = World(ok, per_minute=10**9, per_day=10**9)
    governor = world.deliverer._governor
    reads: list[float] = []
    calls_left = governor.calls_left

    async def counted(tenant: str, now: float) -> int:
        reads.append(now)
        return await calls_left(tenant, now)

    governor.calls_left = counted  # type: ignore[method-assign]

    async def scenario() -> None:
        await world.store.enqueue(tracks(world, 60, people=1))

        async def delivered() -> bool:
            return (await world.store.counts())["delivered"] == 60

        await dispatch_until(world.deliverer, delivered)

    asyncio.run(scenario())
    assert reads == [NOW]  # time stands still: one read, for the three claims and the idle waits


def test_a_short_budget_is_read_before_every_claim() -> None:
    world = World(ok, per_minute=1_000)
    counted = Counted(world)
    reads: list[float] = []
    governor = world.deliverer._governor
    calls_left = governor.calls_left

    async def counted_read(tenant: str, now: float) -> int:
        reads.append(now)
        return await calls_left(tenant, now)

    governor.calls_left = counted_read  # type: ignore[method-assign]

    async def scenario() -> None:
        await world.store.enqueue(tracks(world, 60, people=1))

        async def delivered() -> bool:
            return (await world.store.counts())["delivered"] == 60

        await dispatch_until(world.deliverer, delivered)

    asyncio.run(scenario())
    assert len(reads) >= len(counted.claims) == 3
