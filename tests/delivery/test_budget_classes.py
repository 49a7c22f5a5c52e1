"""The dispatcher (`Deliverer.run`) with the sync budget spent: Timeline activities (their own
budget) and counted events (no call) are still claimed and delivered, a published track waits
unclaimed, and the dispatcher pauses only when no claim could take anything (DESIGN §3.6, §3.7,
§5: never refuses a call while budget remains). Store, workers, executor and the simulator in one
process (tests/delivery/test_person_runs.py); time stands still, so the spent minute stays spent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from destination.delivery.worker import TIMELINE_CLASS
from tests.delivery.test_person_runs import DESTINATION, Tenant
from tests.delivery.test_timeline_delivery import Budgeted, states, track
from tests.delivery.test_usage_counts import associate, company
from tests.e2e.servers import DOMAIN
from tests.unit.test_dispatch import dispatch_until

MINUTE = 1_800_000_000.0  # the start of a minute


def counted(user: str) -> dict[str, Any]:
    """A track event the sandbox destination counts (usage, not published): no call at all."""
    return {"type": "track", "messageId": f"c-{user}", "userId": user, "event": "Report Exported"}


class PutBacks:
    """Counts events put back (retry_later): an event claimed over a spent budget is put back."""

    def __init__(self, service: Budgeted) -> None:
        self.n = 0
        retry_later = service.store.retry_later

        async def counting(*args: Any, **kwargs: Any) -> bool:
            self.n += 1
            return await retry_later(*args, **kwargs)

        service.store.retry_later = counting  # type: ignore[method-assign]


async def spend_the_sync_minute(service: Budgeted) -> None:
    """Ada and cy are associated with Acme; the sync minute (3 calls) is spent."""
    service.now = MINUTE
    await associate(service, ada=company(service.tenant, "Acme"), cy=company(service.tenant, "Acme"))
    tenant = service.destination.config.domain
    assert tenant is not None
    for _ in range(3):
        await service.gate(tenant)


def test_activities_and_counted_events_go_while_the_sync_minute_is_spent() -> None:
    async def scenario() -> tuple[int, dict[str, str], float]:
        service = Budgeted(Tenant(), sync_per_minute=3, timeline_per_minute=10, destination=DESTINATION)
        await spend_the_sync_minute(service)
        put_backs = PutBacks(service)
        # Oldest first: the published track heads the queue, the others behind it.
        await service.enqueue([track("bob", 1, "Ticket Closed"), track("ada", 1), counted("cy")])

        async def done() -> bool:
            found = await states(service)
            return found["t-ada-1"] == "delivered" and found["c-cy"] == "counted"

        await dispatch_until(service.deliverer, done)
        return put_backs.n, await states(service), service.deliverer._budget_pause()

    put_backs, found, pause = asyncio.run(scenario())
    assert found["t-bob-1"] == "queued"  # waits for the next minute
    assert put_backs == 0  # never claimed: nothing was claimed only to be put back
    assert pause == 0.0  # counted events need no call: the dispatcher never pauses for budget


def test_the_dispatcher_pauses_only_once_timeline_is_spent_too() -> None:
    """A destination with activities and no usage counts: with the sync minute spent, Timeline's
    room keeps the dispatcher claiming; once that is spent too, it pauses until the minute ends."""

    async def scenario() -> tuple[dict[str, str], float, float | None]:
        service = Budgeted(Tenant(), sync_per_minute=3, timeline_per_minute=2)
        await spend_the_sync_minute(service)
        assert service.deliverer._budget_pause() == 0.0
        await service.enqueue([track("ada", n) for n in range(1, 4)])

        async def two_written() -> bool:
            found = await states(service)
            known = service.gate.spent_until(DOMAIN, service.now, TIMELINE_CLASS) is not None  # read
            return found["t-ada-1"] == found["t-ada-2"] == "delivered" and known

        await dispatch_until(service.deliverer, two_written)
        spent = service.gate.spent_until(DOMAIN, service.now, TIMELINE_CLASS)
        return await states(service), service.deliverer._budget_pause(), spent

    found, pause, timeline_spent = asyncio.run(scenario())
    assert found["t-ada-3"] == "queued"
    assert timeline_spent == MINUTE + 60
    assert pause == pytest.approx(60.0)
