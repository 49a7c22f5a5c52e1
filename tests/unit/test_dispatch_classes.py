"""The dispatcher's budget per class when Timeline has no governor of its own (a gate built
without one): activities spend sync calls, so what a batch in flight may spend of either class
comes off the one sync budget."""

from __future__ import annotations

import asyncio

from destination.delivery.store import Calls
from tests.unit.test_worker import World, ok


def test_without_a_timeline_governor_batches_in_flight_spend_the_sync_budget() -> None:
    world = World(ok, per_minute=10)  # margin 0 (guard 0): 10 calls left

    async def left() -> Calls | None:
        in_flight = asyncio.get_running_loop().create_future()
        world.deliverer._in_flight[in_flight] = Calls(3, 2)  # type: ignore[index]
        try:
            return await world.deliverer._calls_left(world.now)
        finally:
            in_flight.cancel()

    assert asyncio.run(left()) == Calls(5, 5)
