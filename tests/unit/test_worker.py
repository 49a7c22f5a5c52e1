"""The worker, with the in-memory store, a fixed clock and Gainsight behind a scripted transport."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from destination.config import Destination
from destination.delivery.governor import RateGovernor, RateWindow
from destination.delivery.memory import MemoryStore
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import NewEvent, StoredEvent
from destination.delivery.worker import BudgetGate, Deliverer, WorkerSettings
from destination.gainsight.client import GainsightClient
from destination.gainsight.executor import Executor
from destination.jsonutil import dumps
from destination.mapping.spec import default_specs
from destination.metrics import Metrics
from tests.conftest import BASE_CONFIG
from tests.gainsight_fake import StrictGainsight

NOW = 1_800_000_030.0  # 30 s into a minute
Handler = Callable[[httpx.Request], httpx.Response]


class World:
    def __init__(
        self,
        handler: Handler,
        per_minute: int = 100,
        lease_seconds: float = 10.0,
        *,
        log_pii: bool = False,
        per_day: int = 50_000,
    ) -> None:
        self.now = NOW
        self.store = MemoryStore(clock=lambda: self.now)
        self.calls: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.calls.append(request)
            return handler(request)

        metrics = Metrics()
        governor = RateGovernor(
            self.store,
            (RateWindow("minute", 60, per_minute), RateWindow("day", 86_400, per_day)),
            guard_seconds=0,
            clock=lambda: self.now,
        )
        self.gate = BudgetGate(governor, metrics, clock=lambda: self.now)
        client = GainsightClient(
            httpx.AsyncClient(transport=httpx.MockTransport(record)), gate=self.gate, clock=lambda: self.now
        )
        destination = Destination.model_validate({"id": "acme", "config": BASE_CONFIG})
        self.deliverer = Deliverer(
            store=self.store,
            destinations={"acme": destination},
            specs=default_specs(),
            executor=Executor(client, self.store, unchanged_ttl_seconds=86_400, clock=lambda: self.now),
            governor=governor,
            gate=self.gate,
            policy=RetryPolicy(max_attempts=3),
            metrics=metrics,
            settings=WorkerSettings(lease_seconds=lease_seconds, log_pii=log_pii),
            clock=lambda: self.now,
            rng=random.Random(1),
        )

    def run(self, *events: dict[str, Any]) -> list[StoredEvent]:
        """Enqueue the events, deliver whatever is ready once, and return every stored event."""
        return asyncio.run(self._run(events))

    async def _run(self, events: tuple[dict[str, Any], ...]) -> list[StoredEvent]:
        ids = []
        for i, event in enumerate(events):
            message = {"messageId": f"m{i}", **event}
            person = message.get("person", "p")
            await self.store.enqueue(
                [NewEvent("acme", message["messageId"], person, message["type"], dumps(message), self.now)]
            )
            ids.append(i + 1)
        await self.deliver_ready()
        return [e for i in ids if (e := await self.store.get_event(i)) is not None]

    async def deliver_ready(self) -> None:
        while claims := await self.store.claim(self.now, 10, 60):
            await self.deliverer.deliver(claims)

    async def deliver_ready_once(self) -> None:
        await self.deliverer.deliver(await self.store.claim(self.now, 10, 60))

    def later(self, seconds: float) -> list[StoredEvent]:
        self.now += seconds
        return asyncio.run(self._later())

    async def _later(self) -> list[StoredEvent]:
        await self.deliver_ready()
        counts = await self.store.counts()
        total = sum(counts.values())
        return [e for i in range(1, total + 1) if (e := await self.store.get_event(i)) is not None]


def ok(request: httpx.Request) -> httpx.Response:
    """Success for the calls the service makes; any other call fails the test where it is made."""
    gainsight = StrictGainsight(gsid="G1")
    answer = gainsight(request)
    assert gainsight.unexpected == []
    return answer


IDENTIFY = {"type": "identify", "traits": {"email": "ada@example.com"}}
GROUP = {"type": "group", "traits": {"name": "Acme"}, "context": {"traits": {"email": "ada@example.com"}}}
TRACK = {"type": "track", "event": "Ticket Closed", "properties": {"a": 1}}


def test_identify_delivered_and_recorded() -> None:
    world = World(ok)
    (event,) = world.run(IDENTIFY)
    assert event.state == "delivered"
    assert [a.outcome for a in event.history] == ["delivered"]
    assert world.calls[0].url.path == "/v1.0/api/people"


def test_per_person_order_is_kept() -> None:
    world = World(ok)
    world.run(IDENTIFY, TRACK, {**IDENTIFY, "traits": {"email": "ada@example.com", "firstName": "A"}})
    assert [c.url.path for c in world.calls] == [
        "/v1.0/api/people",
        "/v1.0/api/eventManager/event",
        "/v1.0/api/people",
    ]


def test_unmapped_track_is_filtered_not_retried() -> None:
    world = World(ok)
    (event,) = world.run({**TRACK, "event": "Not Mapped"})
    why = "Event name mapping not provided for Not Mapped"
    assert (event.state, event.reason, event.history[0].error) == ("filtered", why, why)
    assert world.calls == []


def test_aborted_answer_is_a_dead_letter_at_once_with_gainsight_error() -> None:
    body = {"result": False, "errorCode": "GSOBJ_VDTEMAIL1001", "errorDesc": "bad email"}
    world = World(lambda r: httpx.Response(400, json=body))
    (event,) = world.run(IDENTIFY)
    assert event.state == "dead" and "GSOBJ_VDTEMAIL1001" in (event.reason or "")
    assert event.history[0].response == body and event.history[0].status_code == 400


def test_retryable_answer_backs_off_then_gives_up_after_max_attempts() -> None:
    world = World(lambda r: httpx.Response(503, json={"result": False, "errorCode": "GU_1101"}))
    (event,) = world.run(IDENTIFY)
    assert event.state == "queued" and event.available_at is not None and event.available_at > world.now
    world.later(600)
    (event,) = world.later(600)
    assert event.state == "dead" and len(event.history) == 3
    assert "gave up after 3 attempts" in (event.reason or "")


def test_throttled_waits_for_the_next_window() -> None:
    answers = iter(
        [httpx.Response(429, json={"errorCode": "GU_2400"}), httpx.Response(200, json={"result": True})]
    )
    world = World(lambda r: next(answers))
    (event,) = world.run(IDENTIFY)
    assert event.state == "queued" and event.available_at is not None
    assert 1_800_000_060.0 <= event.available_at <= 1_800_000_061.0
    (event,) = world.later(31)
    assert event.state == "delivered"


def test_retry_after_is_honoured() -> None:
    answers = iter(
        [httpx.Response(503, headers={"Retry-After": "120"}), httpx.Response(200, json={"result": True})]
    )
    world = World(lambda r: next(answers))
    (event,) = world.run(IDENTIFY)
    assert event.available_at is not None and event.available_at >= NOW + 120
    assert world.later(60)[0].state == "queued"
    assert world.later(62)[0].state == "delivered"


def test_over_budget_event_waits_without_a_call_or_an_attempt() -> None:
    world = World(ok, per_minute=1)
    other = {"type": "identify", "traits": {"email": "bob@example.com"}, "person": "bob"}
    first, second = world.run(IDENTIFY, other)
    assert first.state == "delivered" and second.state == "queued"
    assert second.history == () and len(world.calls) == 1
    assert world.later(30)[1].state == "delivered"


def test_group_retry_does_not_redo_the_company_write() -> None:
    association_answers = iter([httpx.Response(500), httpx.Response(200, json={"result": True})])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/api/people":
            return next(association_answers)
        return ok(request)

    world = World(handler)
    (event,) = world.run(GROUP)
    assert event.state == "queued" and event.progress == {"company_gsid": "G1"}
    (event,) = world.later(600)
    assert event.state == "delivered"
    assert [(c.method, c.url.path) for c in world.calls] == [
        ("POST", "/v1/data/objects/query/Company"),
        ("POST", "/v1/data/objects/Company"),
        ("PUT", "/v1.0/api/people"),
        ("PUT", "/v1.0/api/people"),
    ]


def test_event_of_a_removed_destination_is_a_dead_letter() -> None:
    world = World(ok)

    async def run() -> StoredEvent | None:
        await world.store.enqueue([NewEvent("gone", "m", "p", "identify", dumps(IDENTIFY), NOW)])
        await world.deliver_ready()
        return await world.store.get_event(1)

    event = asyncio.run(run())
    assert event is not None and event.state == "dead" and "gone" in (event.reason or "")


def test_unreadable_stored_event_is_a_dead_letter() -> None:
    world = World(ok)

    async def run() -> StoredEvent | None:
        await world.store.enqueue([NewEvent("acme", "m", "p", "identify", b"not json", NOW)])
        await world.deliver_ready()
        return await world.store.get_event(1)

    event = asyncio.run(run())
    assert event is not None and event.state == "dead" and world.calls == []


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"type": "identify", "traits": {}}, "email is required for identify"),
        (
            {"type": "identify", "traits": {"email": {"a": 1}}},
            "traits.email must be a string (an email address), got dict",
        ),
        (
            {"type": "identify", "context": {"traits": {"email": "n/a"}}},
            "context.traits.email does not look like an email address",
        ),
        (
            {"type": "group", "traits": {"name": "Acme"}, "context": {"traits": {"email": 7}}},
            "context.traits.email must be a string (an email address), got int",
        ),
        (
            {"type": "track", "event": "Ticket Closed", "properties": [1]},
            "properties must be a JSON object, got list",
        ),
    ],
)
def test_event_the_planner_refuses_is_rejected_at_once_never_retried(
    event: dict[str, Any], reason: str
) -> None:
    world = World(ok)

    async def run() -> tuple[StoredEvent | None, int]:
        await world.store.enqueue([NewEvent("acme", "m", "p", event["type"], dumps(event), NOW)])
        await world.deliver_ready()
        claimed = await world.store.claim(NOW + 10**6, 10, 60)
        return await world.store.get_event(1), len(claimed)

    stored, claimed_later = asyncio.run(run())
    assert stored is not None and (stored.state, stored.reason) == ("rejected", reason)
    assert [a.outcome for a in stored.history] == ["rejected"] and world.calls == [] and claimed_later == 0
    assert world.deliverer._metrics.outcomes.labels("acme", "rejected")._value.get() == 1


def test_spent_budget_is_remembered_until_the_window_ends() -> None:
    world = World(ok, per_minute=1)
    asked: list[float] = []
    governor = world.deliverer._governor
    original = governor.try_acquire

    async def counting(tenant: str, now: float, pool: str | None = None) -> float | None:
        asked.append(now)
        return await original(tenant, now, pool)

    governor.try_acquire = counting  # type: ignore[method-assign]
    people = [{**IDENTIFY, "traits": {"email": f"p{i}@example.com"}} for i in range(4)]

    async def run() -> None:
        for i, event in enumerate(people):
            await world.store.enqueue(
                [NewEvent("acme", f"m{i}", f"p{i}", "identify", dumps(event), world.now)]
            )
        await world.deliver_ready_once()

    asyncio.run(run())
    assert len(world.calls) == 1 and len(asked) == 2  # one granted, one refused, two refused from memory
    assert world.deliverer._budget_pause() == pytest.approx(30.0)


def test_association_to_a_vanished_company_resolves_it_afresh() -> None:
    unknown = {"result": False, "errorCode": "GSOBJ_PEOPLE1001", "errorDesc": "company does not exist"}
    refusals = [httpx.Response(400, json=unknown)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1.0/api/people" and refusals:
            return refusals.pop()
        return ok(request)

    world = World(handler)
    (event,) = world.run(GROUP)
    assert event.state == "queued" and "GSOBJ_PEOPLE1001" in (event.history[0].error or "")
    assert asyncio.run(world.store.company_gsids("acme.gainsightcloud.com", ["Acme"])) == {}
    (event,) = world.later(600)
    assert event.state == "delivered"
    assert [c.url.path for c in world.calls].count("/v1/data/objects/query/Company") == 2


def test_an_unexpected_error_counts_as_a_failed_attempt() -> None:
    world = World(ok)

    async def broken(runs: Any, credentials: Any) -> None:
        raise RuntimeError("bug")

    world.deliverer._executor.run = broken  # type: ignore[method-assign]

    async def run() -> StoredEvent | None:
        await world.store.enqueue([NewEvent("acme", "m", "p", "identify", dumps(IDENTIFY), NOW)])
        await world.deliverer._deliver_guarded(await world.store.claim(world.now, 1, 60))
        return await world.store.get_event(1)

    event = asyncio.run(run())
    assert event is not None and event.state == "queued" and event.lease_owner is None
    assert event.history[0].outcome == "retryable" and "RuntimeError" in (event.history[0].error or "")


LOST = "claims lost their lease"


def _slow_identify_beside_a_filtered_track(steal: bool) -> World:
    """A person's identify is delivered slowly (its lease renewed meanwhile) while another
    person's claim held only an unmapped track, finished at once; `steal`: another worker takes
    the identify's events once its lease has run out."""
    renewals: list[int] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + 30
        while len(renewals) < 2 and time.monotonic() < deadline:  # renewed at least twice
            await asyncio.sleep(0.01)
        if steal:
            world.now += 120  # past the claim's 60 s lease
            assert await world.store.claim(world.now, 10, 60)
            renewals.clear()
            while not renewals and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        return ok(request)

    world = World(slow, lease_seconds=0.15)
    renew = world.store.renew

    async def counted(lease: str, now: float, seconds: float) -> int:
        renewals.append(1)
        return await renew(lease, now, seconds)

    world.store.renew = counted  # type: ignore[method-assign]
    world.run({**IDENTIFY, "person": "p1"}, {**TRACK, "event": "Never Mapped", "person": "p2"})
    return world


def test_a_claim_finished_at_once_is_not_said_to_have_lost_its_lease(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="destination.delivery.worker"):
        _slow_identify_beside_a_filtered_track(steal=False)
    assert LOST not in caplog.text


def test_a_claim_taken_by_another_worker_is_said_to_have_lost_its_lease(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="destination.delivery.worker"):
        _slow_identify_beside_a_filtered_track(steal=True)
    assert f"1 {LOST}" in caplog.text


def test_a_replayed_signature_is_delivered_and_says_why_the_answer_was_401(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def replayed(request: httpx.Request) -> httpx.Response:
        body = {"result": False, "errorCode": "GSSIG_REPLAY", "errorDesc": "Signature already used"}
        return httpx.Response(401, json=body)

    with caplog.at_level(logging.INFO, logger="destination.events"):
        (event,) = World(replayed).run(TRACK)
    assert event.state == "delivered"
    (attempt,) = event.history
    assert (attempt.outcome, attempt.status_code) == ("delivered", 401)
    assert attempt.error == (
        "received by an earlier attempt; this one was refused as a replay: "
        "Gainsight answered 401 GSSIG_REPLAY: Signature already used"
    )
    (line,) = [r for r in caplog.records if r.getMessage() == "event outcome"]
    assert (line.outcome, line.status, line.reason) == ("delivered", 401, attempt.error)  # type: ignore[attr-defined]


def test_a_plain_delivery_has_no_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="destination.events"):
        (event,) = World(ok).run(TRACK)
    assert event.history[0].error is None
    (line,) = [r for r in caplog.records if r.getMessage() == "event outcome"]
    assert not hasattr(line, "reason")
