"""Timeline activities on the delivery path (store → workers → executor → the in-process
simulator): the activity on the person's last company, exactly once through retries (the
duplicate-ExternalId refusal counts as delivered and is kept in the history), alsoPublish once,
no company → rejected, per-person order across Timeline and sync calls, and Timeline's budget
apart from the sync one."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from destination.config import Destination
from destination.delivery.governor import RateGovernor, RateWindow, timeline_windows
from destination.delivery.worker import BudgetGate
from destination.gainsight.client import GainsightClient
from destination.metrics import Metrics
from tests.delivery.test_person_runs import Service, Tenant
from tests.e2e.servers import DOMAIN, sandbox_config

TIMELINE = {
    "author": "csm@acme.com",
    "activities": [
        {"event": "Meeting Booked", "type": "Meeting"},
        {"event": "Feature Used", "type": "Update", "alsoPublish": True},
    ],
}
ACME = Destination.model_validate({"id": "acme", "config": sandbox_config(timeline=TIMELINE)})


def group(user: str, company: str, n: int = 0) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": f"g-{user}-{n}",
        "userId": user,
        "traits": {"name": company},
        "context": {"traits": {"email": f"{user}@example.com"}},
    }


def track(user: str, n: int, event: str = "Meeting Booked") -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"t-{user}-{n}",
        "userId": user,
        "event": event,
        "timestamp": "2026-12-06T10:00:00Z",
        "properties": {"n": n, "who": user},
    }


def identify(user: str, n: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"i-{user}-{n}",
        "userId": user,
        "traits": {"email": f"{user}@example.com", "seats": n},
    }


async def states(service: Service) -> dict[str, str]:
    return {e.message_id: e.state for e in await service.events()}


def activities(tenant: Tenant) -> Counter[str]:
    return Counter(a["ExternalId"] for a in tenant.sim.activities_view())


def test_an_activity_goes_on_the_person_s_last_company() -> None:
    async def scenario() -> tuple[Service, dict[str, str]]:
        service = Service(Tenant(), destination=ACME)
        await service.enqueue([group("ada", "Acme"), group("ada", "Beta", 1), track("ada", 1)])
        await service.drain()
        return service, await states(service)

    service, found = asyncio.run(scenario())
    assert found["t-ada-1"] == "delivered"
    [activity] = service.tenant.sim.activities_view()
    beta = next(c["Gsid"] for c in service.tenant.sim.companies_view() if c["Name"] == "Beta")
    assert activity["GsCompanyId"] == beta
    assert {k: activity[k] for k in ("ExternalId", "ContextName", "TypeName", "Subject", "Author")} == {
        "ExternalId": "t-ada-1",
        "ContextName": "Company",
        "TypeName": "Meeting",
        "Subject": "Meeting Booked",
        "Author": "csm@acme.com",
    }
    assert activity["Notes"] == "n: 1\nwho: ada"
    assert not service.tenant.sim.events_view()  # not published: alsoPublish is false
    assert ("POST", "/v1/ant/es/activity") in service.tenant.calls


def test_no_company_is_rejected_with_that_reason_and_nothing_is_sent() -> None:
    async def scenario() -> Service:
        service = Service(Tenant(), destination=ACME)
        await service.enqueue([track("lonely", 1)])
        await service.drain()
        return service

    service = asyncio.run(scenario())
    [event] = asyncio.run(service.events())
    assert event.state == "rejected" and event.reason is not None
    assert event.reason.startswith("no company: the person was never associated with a company")
    assert service.tenant.calls == []


def test_a_retried_insert_that_meets_the_duplicate_refusal_is_delivered_and_shows_it() -> None:
    """The first answer is lost after the activity was saved (a timeout, say): the retry meets the
    simulator's refusal of the ExternalId, and the event is delivered, one activity in all."""
    lost: list[str] = []

    async def scenario() -> Service:
        tenant = Tenant()

        async def lose_first_answer(request: httpx.Request) -> httpx.Response:
            answer = await asgi.handle_async_request(request)
            if request.url.path == "/v1/ant/es/activity" and not lost:
                lost.append(request.url.path)
                await answer.aread()  # it landed; the client never hears so
                raise httpx.ReadTimeout("timed out", request=request)
            return answer

        asgi = httpx.ASGITransport(app=tenant.app)
        tenant.client = GainsightClient(
            httpx.AsyncClient(transport=httpx.MockTransport(lose_first_answer)), base_url="http://sim"
        )
        service = Service(tenant, destination=ACME)
        await service.enqueue([group("ada", "Acme"), track("ada", 1)])
        await service.drain()
        service.now += 3600  # past the retry's backoff
        await service.drain()
        return service

    service = asyncio.run(scenario())
    assert lost and activities(service.tenant) == Counter({"t-ada-1": 1})
    event = next(e for e in asyncio.run(service.events()) if e.message_id == "t-ada-1")
    assert event.state == "delivered"
    first, second = event.history
    assert (first.outcome, first.status_code) == ("retryable", None)
    assert (second.outcome, second.status_code) == ("delivered", 400)
    assert second.response["errorCode"] == "GSTL_DUPLICATE_EXTERNAL_ID"
    assert second.error is not None and second.error.startswith("saved by an earlier attempt")


def test_also_publish_publishes_once_when_the_publish_fails_first() -> None:
    refused: list[str] = []

    def refuse_first_publish(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1.0/api/eventManager/event" and not refused:
            refused.append("503")
            return httpx.Response(503, json={"result": False, "errorCode": "GU_1101"})
        return None

    async def scenario() -> Service:
        service = Service(Tenant(refuse_first_publish), destination=ACME)
        await service.enqueue([group("ada", "Acme"), track("ada", 1, "Feature Used")])
        await service.drain()
        service.now += 3600
        await service.drain()
        return service

    service = asyncio.run(scenario())
    assert refused == ["503"]
    assert activities(service.tenant) == Counter({"t-ada-1": 1})
    assert service.tenant.calls.count(("POST", "/v1/ant/es/activity")) == 1  # not sent again
    assert [e["body"] for e in service.tenant.sim.events_view()] == [{"n": 1, "who": "ada"}]
    assert asyncio.run(states(service))["t-ada-1"] == "delivered"


def test_a_failing_activity_holds_its_person_s_later_events_not_others() -> None:
    def refuse_activities(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/ant/es/activity":
            return httpx.Response(503, json={"result": False, "errorCode": "GU_1101"})
        return None

    async def scenario() -> dict[str, str]:
        service = Service(Tenant(refuse_activities), destination=ACME)
        await service.enqueue([group("ada", "Acme"), group("bob", "Beta")])
        await service.drain()
        await service.enqueue(
            [track("ada", 1), identify("ada", 2), track("bob", 1, "Ticket Closed"), identify("bob", 2)]
        )
        await service.drain()
        return await states(service)

    found = asyncio.run(scenario())
    assert found["t-ada-1"] == "queued" and found["i-ada-2"] == "queued"  # waiting, in order
    assert found["t-bob-1"] == "delivered" and found["i-bob-2"] == "delivered"


class Budgeted(Service):
    """The service with a real budget gate: sync and Timeline governors over the same store."""

    def __init__(
        self,
        tenant: Tenant,
        sync_per_minute: int,
        timeline_per_minute: int,
        counts_toward_day: bool = True,
        destination: Destination = ACME,
    ) -> None:
        super().__init__(tenant, destination=destination)
        windows = (RateWindow("minute", 60, sync_per_minute), RateWindow("day", 86_400, 50_000))
        governor = RateGovernor(self.store, windows, guard_seconds=0, clock=lambda: self.now)
        timeline = RateGovernor(
            self.store,
            timeline_windows(timeline_per_minute, 50_000, counts_toward_day, 60, 86_400),
            guard_seconds=0,
            clock=lambda: self.now,
        )
        self.gate = gate = BudgetGate(governor, Metrics(), clock=lambda: self.now, timeline=timeline)
        asgi = httpx.ASGITransport(app=tenant.app)
        client = GainsightClient(httpx.AsyncClient(transport=asgi), base_url="http://sim", gate=gate)
        self.wire(client, governor, gate)


@pytest.mark.parametrize("counts_toward_day", [True, False])
def test_timeline_calls_spend_their_own_minute_and_the_shared_day(counts_toward_day: bool) -> None:
    """Sync 3 a minute, Timeline 10: a group (search, insert, upsert: the whole sync minute), then
    eight activities, all in the same minute. Were activities counted in the sync minute, none
    would go before the next one. They count toward the day unless told not to."""

    async def scenario() -> tuple[Budgeted, dict[str, str], dict[str, int]]:
        service = Budgeted(Tenant(), 3, 10, counts_toward_day)
        service.now = 1_800_000_000.0  # the start of a minute
        await service.enqueue([group("ada", "Acme"), *(track("ada", n) for n in range(8))])
        await service.drain()
        minute, day = service.now // 60 * 60, service.now // 86_400 * 86_400
        used = await service.store.budget_used(
            DOMAIN, [("minute", minute), ("timeline_minute", minute), ("day", day)]
        )
        return service, await states(service), used

    service, found, used = asyncio.run(scenario())
    assert all(found[f"t-ada-{n}"] == "delivered" for n in range(8))
    # One day counter for both classes, or the sync calls alone.
    assert used == {"minute": 3, "timeline_minute": 8, "day": 11 if counts_toward_day else 3}
    assert len(activities(service.tenant)) == 8


def test_a_spent_timeline_minute_defers_activities_but_not_sync_calls() -> None:
    async def scenario() -> dict[str, str]:
        service = Budgeted(Tenant(), sync_per_minute=20, timeline_per_minute=2)
        service.now = 1_800_000_000.0
        await service.enqueue([group("ada", "Acme"), *(track("ada", n) for n in range(4))])
        await service.enqueue([identify("bob", 1), track("bob", 2, "Ticket Closed")])
        await service.drain()
        return await states(service)

    found = asyncio.run(scenario())
    assert [found[f"t-ada-{n}"] for n in range(4)] == ["delivered", "delivered", "queued", "queued"]
    assert found["i-bob-1"] == "delivered" and found["t-bob-2"] == "delivered"


def test_a_spent_timeline_budget_is_remembered_apart_from_the_sync_one() -> None:
    """The dispatcher reads the gate's memory of the sync budget (the delivery pool) to decide
    whether to claim: a spent Timeline minute must not stop it claiming sync work."""

    async def scenario() -> tuple[float | None, float | None]:
        service = Budgeted(Tenant(), sync_per_minute=20, timeline_per_minute=1)
        service.now = 1_800_000_000.0
        await service.enqueue([group("ada", "Acme"), track("ada", 1), track("ada", 2)])
        await service.drain()
        gate = service.gate
        return gate.spent_until(DOMAIN, service.now), gate.spent_until(DOMAIN, service.now, "timeline")

    sync, timeline = asyncio.run(scenario())
    assert sync is None and timeline == 1_800_000_060.0


def test_a_written_activity_whose_publish_is_over_budget_waits_holding_its_person() -> None:
    """Sync 3 a minute (the group spends them): the activity is written, its publish waits for
    the next minute remembering the activity is written, and the person's next activity (Timeline
    budget to spare) waits behind it; in the next minute the publish alone goes, then the next."""

    async def scenario() -> tuple[Service, dict[str, str], dict[str, Any] | None, dict[str, str]]:
        service = Budgeted(Tenant(), sync_per_minute=3, timeline_per_minute=10)
        service.now = 1_800_000_000.0
        await service.enqueue([group("ada", "Acme"), track("ada", 1, "Feature Used"), track("ada", 2)])
        await service.drain()
        waiting = await states(service)
        stored = await service.store.get_event(2)
        progress = stored.progress if stored is not None else None
        service.now += 60
        await service.drain()
        return service, waiting, progress, await states(service)

    service, waiting, progress, done = asyncio.run(scenario())
    assert (waiting["t-ada-1"], waiting["t-ada-2"]) == ("queued", "queued")
    assert progress == {"activity_written": True}
    assert (done["t-ada-1"], done["t-ada-2"]) == ("delivered", "delivered")
    assert activities(service.tenant) == Counter({"t-ada-1": 1, "t-ada-2": 1})
    assert [e["body"] for e in service.tenant.sim.events_view()] == [{"n": 1, "who": "ada"}]
    assert service.tenant.sim.counters_view()["endpoints"]["timeline.activity"]["calls"] == 2
