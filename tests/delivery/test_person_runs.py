"""The whole delivery path (store → workers → executor) against the simulator leaves Gainsight in
exactly the state that sending every event one by one, in order, leaves (DESIGN §6), while
spending fewer calls; per-person order holds across runs and tracks; leases belong to claims.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination.delivery.governor import RateGovernor, RateWindow
from destination.delivery.memory import MemoryStore
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import NewEvent, StoredEvent
from destination.delivery.worker import Deliverer
from destination.events import ordering_key
from destination.gainsight import plan as p
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.outcomes import classify
from destination.jsonutil import dumps
from destination.mapping.spec import default_specs
from destination.metrics import Metrics
from destination.sandbox import sandbox_destination
from destination.simulator import SimulatorConfig, create_simulator_app
from destination.simulator.state import Simulator

DESTINATION = sandbox_destination()
CREDENTIALS = Credentials.of(DESTINATION.id, DESTINATION.config)
SPECS = default_specs()
SYSTEM_FIELDS = {"Gsid", "CreatedDate", "ModifiedDate", "CreatedBy", "ModifiedBy"}
Handler = Callable[[httpx.Request], Awaitable[httpx.Response] | None]


class Tenant:
    """A fresh simulated Gainsight tenant, reached in process; `calls` lists (method, path)."""

    def __init__(self, refuse: Callable[[httpx.Request], httpx.Response | None] | None = None) -> None:
        config = SimulatorConfig.sandbox(rate_limit_per_minute=1_000_000, rate_limit_per_day=10_000_000)
        self.app = create_simulator_app(config)
        self.calls: list[tuple[str, str]] = []
        asgi = httpx.ASGITransport(app=self.app)

        async def handle(request: httpx.Request) -> httpx.Response:
            self.calls.append((request.method, request.url.path))
            refused = refuse(request) if refuse is not None else None
            return refused if refused is not None else await asgi.handle_async_request(request)

        self.client = GainsightClient(
            httpx.AsyncClient(transport=httpx.MockTransport(handle)), base_url="http://sim"
        )

    @property
    def sim(self) -> Simulator:
        simulator: Simulator = self.app.state.simulator
        return simulator

    def state(self) -> dict[str, Any]:
        """People, companies, associations and events, without ids and timestamps."""
        names = {c["Gsid"]: c["Name"] for c in self.sim.companies_view()}
        people = {
            str(person["Email"]).casefold(): (
                {k: v for k, v in person.items() if k not in SYSTEM_FIELDS | {"companies"}},
                sorted(names[link["Company_ID"]] for link in person["companies"]),
            )
            for person in self.sim.people_view()
        }
        companies = sorted(
            sorted((k, str(v)) for k, v in c.items() if k not in SYSTEM_FIELDS)
            for c in self.sim.companies_view()
        )
        events: dict[str, list[int]] = {}
        for event in self.sim.events_view():
            events.setdefault(event["body"]["who"], []).append(event["body"]["n"])
        return {"people": people, "companies": companies, "events": events}


# ---- the oracle: every event alone, as the reference sends it ----


async def one_by_one(tenant: Tenant, events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        plan = p.plan_event(event, DESTINATION.config, SPECS)
        if isinstance(plan, p.GroupPlan):
            found = await tenant.client.send(plan.search_request(), CREDENTIALS)
            records = found.body["data"]["records"]
            write = plan.update_request() if records else plan.insert_request()
            written = await tenant.client.send(write, CREDENTIALS)
            gsid = written.body["data"]["records"][0]["Gsid"]  # as the reference reads it
            request = plan.association_request(gsid)
        else:
            request = plan.request
        answer = await tenant.client.send(request, CREDENTIALS)
        assert classify(answer) == "delivered", answer.body


# ---- the delivery path ----


class Service:
    """Store, workers and executor in one process, delivering to a tenant; time stands still."""

    def __init__(self, tenant: Tenant, ttl: float = 86_400.0, lease_seconds: float = 60.0) -> None:
        self.now = time.time()
        self.store = MemoryStore(clock=lambda: self.now)
        self.tenant = tenant
        self.lease_seconds = lease_seconds
        self.metrics = Metrics()
        governor = RateGovernor(self.store, (RateWindow("minute", 60, 1_000_000),), guard_seconds=0)
        self.executor = Executor(
            tenant.client,
            self.store,
            unchanged_ttl_seconds=ttl,
            saved=self.metrics.saved,
            clock=lambda: self.now,
        )
        self.deliverer = Deliverer(
            store=self.store,
            destinations={DESTINATION.id: DESTINATION},
            specs=SPECS,
            executor=self.executor,
            governor=governor,
            gate=None,
            policy=RetryPolicy(max_attempts=3),
            metrics=self.metrics,
            clock=lambda: self.now,
            rng=random.Random(7),
        )

    async def enqueue(self, events: Sequence[dict[str, Any]]) -> None:
        await self.store.enqueue(
            [
                NewEvent(DESTINATION.id, e["messageId"], ordering_key(e), e["type"], dumps(e), self.now)
                for e in events
            ]
        )

    async def drain(self, limits: Sequence[int] = (10,)) -> None:
        """Deliver until nothing is ready; two batches at a time, claimed `limits[i]` runs each."""
        for i in range(10_000):
            first = await self.store.claim(self.now, limits[i % len(limits)], self.lease_seconds)
            second = await self.store.claim(self.now, limits[(i + 1) % len(limits)], self.lease_seconds)
            if not first and not second:
                return
            await asyncio.gather(self.deliverer.deliver(first), self.deliverer.deliver(second))

    async def events(self) -> list[StoredEvent]:
        total = sum((await self.store.counts()).values())
        return [e for i in range(1, total + 1) if (e := await self.store.get_event(i)) is not None]


# ---- events ----

PEOPLE = ["ada@example.com", "bob@example.com", "cy@example.com"]
# Names vary in case: Gainsight (the simulator by default) matches them ignoring case, so "Acme",
# "ACME" and "acme" are one company, named as the last event received spells it.
COMPANIES = ["Acme", "ACME", "acme", "Beta", "Gamma"]


@st.composite
def event_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 14))
    events = []
    for n in range(count):
        who = draw(st.sampled_from(PEOPLE))
        kind = draw(st.sampled_from(["identify", "group", "track"]))
        if kind == "identify":
            traits: dict[str, Any] = {"email": who}
            if draw(st.booleans()):
                traits["firstName"] = draw(st.sampled_from(["Ada", "Bo"]))
            if draw(st.booleans()):
                traits["seats"] = draw(st.integers(1, 3))
            event: dict[str, Any] = {"type": "identify", "traits": traits}
        elif kind == "group":
            company: dict[str, Any] = {"name": draw(st.sampled_from(COMPANIES))}
            if draw(st.booleans()):
                company["employees"] = draw(st.integers(1, 3))
            if draw(st.booleans()):
                company["region"] = draw(st.sampled_from(["EMEA", "APAC"]))
            event = {"type": "group", "traits": company, "context": {"traits": {"email": who}}}
        else:
            event = {
                "type": "track",
                "event": "Ticket Closed",
                "properties": {"who": who, "n": n},
                "context": {"traits": {"email": who}},
            }
        events.append({**event, "messageId": f"m{n}"})
    return events


def again(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events sent again, as SDKs do on every page load: new messageIds."""
    return [{**e, "messageId": "again-" + e["messageId"], "properties": _later(e)} for e in events]


def _later(event: dict[str, Any]) -> Any:
    properties = event.get("properties")
    return {**properties, "n": properties["n"] + 100} if isinstance(properties, dict) else properties


# ---- the property ----


EXAMPLES = int(os.environ.get("GSD_TEST_EXAMPLES", "40"))  # more for a deeper search


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_lists(),
    limits=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    ttl=st.sampled_from([0, 86_400]),
)
def test_any_interleaving_leaves_the_one_by_one_state(
    events: list[dict[str, Any]], limits: list[int], ttl: float
) -> None:
    async def scenario() -> None:
        reference, tenant = Tenant(), Tenant()
        await one_by_one(reference, events)
        await one_by_one(reference, again(events))
        service = Service(tenant, ttl=ttl)
        await service.enqueue(events)
        await service.drain(limits)
        await service.enqueue(again(events))
        await service.drain(limits)
        assert tenant.state() == reference.state()
        assert {e.state for e in await service.events()} <= {"delivered", "unchanged"}
        assert len(tenant.calls) <= len(reference.calls)

    asyncio.run(scenario())


# ---- per-person order, and what runs save ----


def identify(who: str, n: int, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "messageId": f"m{n}", "traits": {"email": who, **traits}}


def group(who: str, n: int, name: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": f"m{n}",
        "traits": {"name": name, **traits},
        "context": {"traits": {"email": who}},
    }


def track(who: str, n: int) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"m{n}",
        "event": "Ticket Closed",
        "properties": {"who": who, "n": n},
        "context": {"traits": {"email": who}},
    }


PEOPLE_PATH = ("PUT", "/v1.0/api/people")
PUBLISH = ("POST", "/v1.0/api/eventManager/event")
SEARCH = ("POST", "/v1/data/objects/query/Company")
INSERT = ("POST", "/v1/data/objects/Company")
UPDATE = ("PUT", "/v1/data/objects/Company")


def test_a_person_s_runs_and_tracks_reach_gainsight_in_order() -> None:
    ada = "ada@example.com"
    events = [
        identify(ada, 0, firstName="Ada"),
        group(ada, 1, "Acme"),
        track(ada, 2),
        identify(ada, 3, firstName="Ida"),
        identify(ada, 4, seats=2),
        track(ada, 5),
        group(ada, 6, "Beta"),
    ]

    async def scenario() -> Tenant:
        tenant = Tenant()
        service = Service(tenant)
        await service.enqueue(events)
        await service.drain()
        return tenant

    tenant = asyncio.run(scenario())
    # One claim: both companies are written first (one search, one insert), then the person's
    # upserts and tracks in order.
    assert tenant.calls == [SEARCH, INSERT, PEOPLE_PATH, PUBLISH, PEOPLE_PATH, PUBLISH, PEOPLE_PATH]
    people = [r for r in tenant.sim.requests_view() if r["path"] == "/v1.0/api/people"]
    assert len(people) == 3
    (person,) = tenant.sim.people_view()
    assert (person["FirstName"], person["Seats__gc"], len(person["companies"])) == ("Ida", 2, 2)


def test_group_events_of_many_people_share_company_calls() -> None:
    people = [f"p{i}@example.com" for i in range(60)]
    events = [group(who, n, f"Co{n % 55}", employees=n) for n, who in enumerate(people)]

    async def scenario() -> Service:
        service = Service(Tenant())
        await service.enqueue(events)
        await service.drain([100])
        return service

    service = asyncio.run(scenario())
    calls = service.tenant.calls
    assert calls.count(SEARCH) == 2 and calls.count(INSERT) == 2  # 55 new companies: 50 + 5
    assert calls.count(UPDATE) == 0  # five companies named twice: merged, inserted once each
    assert calls.count(PEOPLE_PATH) == 60
    employees = {c["Name"]: c["Employees"] for c in service.tenant.sim.companies_view()}
    assert (len(employees), employees["Co0"], employees["Co54"]) == (55, 55, 54)  # the last event wins


def test_unchanged_runs_make_no_call_and_finish_unchanged() -> None:
    ada = "ada@example.com"
    first = [identify(ada, 0, firstName="Ada"), group(ada, 1, "Acme", employees=3)]

    async def scenario() -> tuple[Service, list[StoredEvent]]:
        service = Service(Tenant())
        await service.enqueue(first)
        await service.drain()
        service.tenant.calls.clear()
        await service.enqueue(again_ids(first))
        await service.drain()
        return service, await service.events()

    service, stored = asyncio.run(scenario())
    assert service.tenant.calls == []
    assert [e.state for e in stored] == ["delivered", "delivered", "unchanged", "unchanged"]
    saved = service.metrics.registry.get_sample_value(
        "gsd_calls_saved_total", {"destination": DESTINATION.id, "reason": "unchanged"}
    )
    assert saved == 3  # the company write and two person upserts


def again_ids(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "messageId": "again-" + e["messageId"]} for e in events]


# ---- failures stay with their event ----


def test_a_refused_merged_upsert_is_split_so_only_its_cause_dies() -> None:
    ada = "ada@example.com"
    events = [
        identify(ada, 0, firstName="Ada"),
        identify(ada, 1, seats="many"),  # not a number: Gainsight refuses it
        identify(ada, 2, firstName="Ida"),
    ]

    async def scenario() -> list[StoredEvent]:
        service = Service(Tenant())
        await service.enqueue(events)
        await service.drain()
        return await service.events()

    good, bad, later = asyncio.run(scenario())
    assert (good.state, bad.state, later.state) == ("delivered", "dead", "delivered")
    assert bad.history[-1].status_code == 400 and bad.history[-1].request is not None
    merged_call = {a.call for e in (good, bad, later) for a in e.history[:1]}
    assert len(merged_call) >= 1
    assert bad.history[-1].request["headers"]["Accesskey"] == "***"


def test_a_throttled_merged_call_retries_every_event_on_it() -> None:
    throttle = [httpx.Response(429, json={"result": False, "errorCode": "GU_2400"})]

    def refuse(request: httpx.Request) -> httpx.Response | None:
        return throttle.pop() if throttle and request.url.path == "/v1.0/api/people" else None

    ada = "ada@example.com"

    async def scenario() -> list[StoredEvent]:
        service = Service(Tenant(refuse))
        await service.enqueue([identify(ada, 0, firstName="Ada"), group(ada, 1, "Acme"), track(ada, 2)])
        claims = await service.store.claim(service.now, 10, 60)
        await service.deliverer.deliver(claims)
        return await service.events()

    first, second, third = asyncio.run(scenario())
    assert (first.state, second.state, third.state) == ("queued", "queued", "queued")
    assert first.history[0].call == second.history[0].call and first.history[0].outcome == "throttled"
    assert third.history == ()  # waits behind its person's earlier events, untried


# ---- leases belong to claims ----


def test_a_worker_whose_lease_expired_cannot_finish_the_events_another_claim_holds() -> None:
    ada = "ada@example.com"

    async def scenario() -> tuple[Service, StoredEvent | None, int]:
        service = Service(Tenant(), ttl=0, lease_seconds=15)
        await service.enqueue([identify(ada, 0, firstName="Ada")])
        stale = await service.store.claim(service.now, 10, 15)
        service.now += 16  # the first worker stalled past its lease
        fresh = await service.store.claim(service.now, 10, 15)
        assert await service.store.renew(stale[0].lease, service.now, 15) == 0
        await service.deliverer.deliver(stale)  # sends, but may not record or finish
        after_stale = await service.store.get_event(1)
        await service.deliverer.deliver(fresh)
        return service, after_stale, len(service.tenant.calls)

    service, after_stale, calls = asyncio.run(scenario())
    assert after_stale is not None and after_stale.state == "leased" and after_stale.history == ()
    stored = asyncio.run(service.store.get_event(1))
    assert stored is not None and stored.state == "delivered" and stored.attempts == 1
    assert calls == 2
