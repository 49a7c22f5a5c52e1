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

from destination.config import Destination
from destination.config_sections import CompanyIdentity
from destination.delivery.governor import RateGovernor, RateWindow
from destination.delivery.memory import MemoryStore
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import NewEvent, Store, StoredEvent
from destination.delivery.worker import BudgetGate, Deliverer
from destination.events import ordering_key
from destination.gainsight import plan as p
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.outcomes import classify
from destination.gainsight.plan import delivery_cost
from destination.jsonutil import dumps
from destination.mapping.spec import default_specs
from destination.metrics import Metrics
from destination.sandbox import sandbox_destination
from destination.simulator import SimulatorConfig, create_simulator_app
from destination.simulator.state import COMPANY_GSID_PREFIX, Simulator, new_gsid

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
        names = {c["Gsid"]: f"{c.get('Name')}|{c.get('SfdcAccountId')}" for c in self.sim.companies_view()}
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


async def one_by_one(
    tenant: Tenant, events: Sequence[dict[str, Any]], destination: Destination = DESTINATION
) -> set[str]:
    """Send each event alone; the messageIds of the group events a tenant's own company key
    (companyIdentity) cannot place: no company with the key, and none to be created."""
    rejected = set()
    for event in events:
        plan = p.plan_event(event, destination.config, SPECS)
        if isinstance(plan, p.GroupPlan):
            found, _ = await tenant.client.send_described(plan.search_request(), CREDENTIALS)
            records = found.body["data"]["records"]
            if not records and (not plan.create or plan.company_name is None):
                rejected.add(event["messageId"])
                continue
            write = plan.update_request() if records else plan.insert_request()
            written, _ = await tenant.client.send_described(write, CREDENTIALS)
            gsid = written.body["data"]["records"][0]["Gsid"]  # as the reference reads it
            request = plan.association_request(gsid)
        else:
            request = plan.request
        answer, _ = await tenant.client.send_described(request, CREDENTIALS)
        assert classify(answer) == "delivered", answer.body
    return rejected


# ---- the delivery path ----


class Service:
    """Store, workers and executor in one process, delivering to a tenant; time stands still."""

    def __init__(
        self,
        tenant: Tenant,
        ttl: float = 86_400.0,
        lease_seconds: float = 60.0,
        destination: Destination = DESTINATION,
        store: Store | None = None,
    ) -> None:
        self.now = time.time()
        self.destination = destination
        self.store = store or MemoryStore(clock=lambda: self.now)
        self.tenant = tenant
        self.lease_seconds = lease_seconds
        self.metrics = Metrics()
        self.ttl = ttl
        governor = RateGovernor(self.store, (RateWindow("minute", 60, 1_000_000),), guard_seconds=0)
        self.wire(tenant.client, governor, None)

    def wire(self, client: GainsightClient, governor: RateGovernor, gate: BudgetGate | None) -> None:
        """The executor and the workers over this store, calling Gainsight through `client`."""
        self.executor = Executor(
            client,
            self.store,
            unchanged_ttl_seconds=self.ttl,
            saved=self.metrics.saved,
            clock=lambda: self.now,
        )
        self.deliverer = Deliverer(
            store=self.store,
            destinations={self.destination.id: self.destination},
            specs=SPECS,
            executor=self.executor,
            governor=governor,
            gate=gate,
            policy=RetryPolicy(max_attempts=3),
            metrics=self.metrics,
            clock=lambda: self.now,
            rng=random.Random(7),
        )

    async def enqueue(self, events: Sequence[dict[str, Any]]) -> None:
        """As ingest stores them: each with its cost (what its delivery spends of the budget)."""
        config = self.destination.config
        await self.store.enqueue(
            [
                NewEvent(
                    self.destination.id,
                    e["messageId"],
                    ordering_key(e),
                    e["type"],
                    dumps(e),
                    self.now,
                    delivery_cost(e, config),
                )
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

# People as SDKs name them: a userId (an integer one too) or an anonymousId, each with the emails
# its events write (ada changes hers). Tracks carry no email; a group's traits.email is the
# company's address. Every person is ordered by its id alone (DESIGN §5).
PEOPLE: dict[str, tuple[dict[str, Any], list[str]]] = {
    "ada": ({"userId": "u-ada"}, ["ada@example.com", "Ada.L@example.com"]),
    "bob": ({"userId": 7}, ["bob@example.com"]),
    "cy": ({"anonymousId": "anon-cy"}, ["cy@example.com"]),
}
# Names vary in case: Gainsight (the simulator by default) matches them ignoring case, so "Acme",
# "ACME" and "acme" are one company, named as the last event received spells it.
COMPANIES = ["Acme", "ACME", "acme", "Beta", "Gamma"]

# Destinations keyed by SfdcAccountId from groupId (companyIdentity), creating companies or not.
# The CRM made two companies before any event; a third key is new. Names then vary freely (a
# rename is one company) and may be missing where the company exists.
CRM_COMPANIES = {"K1": "Crm One", "K2": "Crm Two"}
NEW_KEY = "K3"


def keyed_destination(create: bool) -> Destination:
    identity = CompanyIdentity.model_validate({"field": "SfdcAccountId", "from": "groupId", "create": create})
    config = DESTINATION.config.model_copy(update={"company_identity": identity})
    return DESTINATION.model_copy(update={"config": config})


def with_crm_companies(tenant: Tenant) -> Tenant:
    for key, name in CRM_COMPANIES.items():
        gsid = new_gsid(COMPANY_GSID_PREFIX)
        tenant.sim.companies[gsid] = {**tenant.sim.creation_fields(gsid), "Name": name, "SfdcAccountId": key}
    return tenant


@st.composite
def event_lists(draw: st.DrawFn, keyed: bool = False) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 14))
    events = []
    for n in range(count):
        who = draw(st.sampled_from(sorted(PEOPLE)))
        ids, emails = PEOPLE[who]
        email = draw(st.sampled_from(emails))
        kind = draw(st.sampled_from(["identify", "group", "track"]))
        if kind == "identify":
            traits: dict[str, Any] = {}
            if draw(st.booleans()):
                traits["firstName"] = draw(st.sampled_from(["Ada", "Bo"]))
            if draw(st.booleans()):
                traits["seats"] = draw(st.integers(1, 3))
            event: dict[str, Any] = {"type": "identify", "traits": traits}
            if draw(st.booleans()):
                traits["email"] = email
            else:
                event["context"] = {"traits": {"email": email}}
        elif kind == "group":
            company: dict[str, Any] = {"name": draw(st.sampled_from(COMPANIES))}
            key = draw(st.sampled_from([*CRM_COMPANIES, NEW_KEY])) if keyed else None
            if key in CRM_COMPANIES and draw(st.booleans()):
                del company["name"]  # known by its key: no name needed
            if draw(st.booleans()):
                company["employees"] = draw(st.integers(1, 3))
            if draw(st.booleans()):
                company["region"] = draw(st.sampled_from(["EMEA", "APAC"]))
            if draw(st.booleans()):
                company["email"] = "billing@" + str(company.get("name", key)).lower() + ".com"
            event = {"type": "group", "traits": company, "context": {"traits": {"email": email}}}
            if key is not None:
                event["groupId"] = key
        else:
            event = {"type": "track", "event": "Ticket Closed", "properties": {"who": who, "n": n}}
        events.append({**event, **ids, "messageId": f"m{n}"})
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
    data=st.data(),
    identity=st.sampled_from(["Name", "key, creating", "key, update-only"]),
    limits=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    ttl=st.sampled_from([0, 86_400]),
)
def test_any_interleaving_leaves_the_one_by_one_state(
    data: st.DataObject, identity: str, limits: list[int], ttl: float
) -> None:
    keyed = identity != "Name"
    destination = keyed_destination(create=identity == "key, creating") if keyed else DESTINATION
    events = data.draw(event_lists(keyed=keyed))

    async def scenario() -> None:
        reference, tenant = Tenant(), Tenant()
        if keyed:
            with_crm_companies(reference), with_crm_companies(tenant)
        rejected = await one_by_one(reference, events, destination)
        rejected |= await one_by_one(reference, again(events), destination)
        service = Service(tenant, ttl=ttl, destination=destination)
        await service.enqueue(events)
        await service.drain(limits)
        await service.enqueue(again(events))
        await service.drain(limits)
        assert tenant.state() == reference.state()
        finished = await service.events()
        assert {e.state for e in finished} <= {"delivered", "unchanged", "rejected"}
        assert {e.message_id for e in finished if e.state == "rejected"} == rejected
        assert len(tenant.calls) <= len(reference.calls)

    asyncio.run(scenario())


# ---- per-person order, and what runs save ----


def user_of(email: str) -> str:
    return "u-" + email.split("@")[0]


def identify(who: str, n: int, user: str | None = None, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": f"m{n}",
        "userId": user or user_of(who),
        "traits": {"email": who, **traits},
    }


def group(who: str, n: int, name: str, user: str | None = None, **traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": f"m{n}",
        "userId": user or user_of(who),
        "traits": {"name": name, **traits},
        "context": {"traits": {"email": who}},
    }


def track(who: str, n: int) -> dict[str, Any]:
    """As SDKs send it: the userId alone says whose it is."""
    return {
        "type": "track",
        "messageId": f"m{n}",
        "userId": user_of(who),
        "event": "Ticket Closed",
        "properties": {"who": who, "n": n},
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
    # Every call in the person's order: Beta's company is not written before the tracks received
    # before its group (that group waits for the person's next claim).
    assert tenant.calls == [
        *(SEARCH, INSERT, PEOPLE_PATH, PUBLISH, PEOPLE_PATH, PUBLISH),
        *(SEARCH, INSERT, PEOPLE_PATH),
    ]
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


# ---- one person is one userId, whatever emails its events carry (DESIGN §5) ----


def test_a_track_with_only_the_user_id_waits_behind_the_identify_before_it() -> None:
    ada = "ada@example.com"
    events = [identify(ada, 0, plan="a"), track(ada, 1), identify(ada, 2, plan="b"), track(ada, 3)]

    async def scenario() -> tuple[list[list[str]], Tenant]:
        service = Service(Tenant())
        await service.enqueue(events)
        first = await service.store.claim(service.now, 10, 60)
        claimed = [[e.message_id for e in claim.events] for claim in first]
        await service.deliverer.deliver(first)
        await service.drain()
        return claimed, service.tenant

    claimed, tenant = asyncio.run(scenario())
    assert claimed == [["m0", "m1", "m2", "m3"]]  # one person: one claim, in the order received
    assert tenant.calls == [PEOPLE_PATH, PUBLISH, PEOPLE_PATH, PUBLISH]


def test_a_run_goes_on_as_another_upsert_where_the_email_changes() -> None:
    old, new = "ada@example.com", "ada.lovelace@example.com"
    events = [
        identify(old, 0, user="u1", firstName="Ada"),
        group(old, 1, "Acme", user="u1"),
        identify(new, 2, user="u1", seats=2),
        identify(new.upper(), 3, user="u1", firstName="Ada"),  # the same email, cased otherwise
    ]

    async def scenario() -> tuple[int, Tenant, list[StoredEvent]]:
        service = Service(Tenant())
        await service.enqueue(events)
        claims = await service.store.claim(service.now, 10, 60)
        await service.deliverer.deliver(claims)
        return len(claims), service.tenant, await service.events()

    claims, tenant, stored = asyncio.run(scenario())
    assert claims == 1  # one person's run
    assert tenant.calls == [SEARCH, INSERT, PEOPLE_PATH, PEOPLE_PATH]
    bodies = [r for r in tenant.sim.requests_view() if r["path"] == "/v1.0/api/people"]
    assert len(bodies) == 2
    people = {str(p["Email"]).casefold(): p for p in tenant.sim.people_view()}
    assert people[old]["FirstName"] == "Ada" and len(people[old]["companies"]) == 1
    assert (people[new]["Seats__gc"], people[new]["FirstName"], people[new]["companies"]) == (2, "Ada", [])
    first_call = {a.call for e in stored[:2] for a in e.history}
    second_call = {a.call for e in stored[2:] for a in e.history}
    assert len(first_call) == 1 and len(second_call) == 1 and first_call != second_call
    assert [e.state for e in stored] == ["delivered"] * 4


def test_the_stretch_after_an_email_change_waits_when_the_first_upsert_must_be_retried() -> None:
    throttle = [httpx.Response(429, json={"result": False, "errorCode": "GU_2400"})]

    def refuse(request: httpx.Request) -> httpx.Response | None:
        return throttle.pop() if throttle and request.url.path == "/v1.0/api/people" else None

    async def scenario() -> tuple[Tenant, list[StoredEvent]]:
        service = Service(Tenant(refuse))
        await service.enqueue(
            [identify("a@example.com", 0, user="u1"), identify("b@example.com", 1, user="u1")]
        )
        await service.deliverer.deliver(await service.store.claim(service.now, 10, 60))
        return service.tenant, await service.events()

    tenant, (first, second) = asyncio.run(scenario())
    assert tenant.calls == [PEOPLE_PATH]  # b's upsert is not sent before a's
    assert (first.state, first.history[0].outcome) == ("queued", "throttled")
    assert (second.state, second.history) == ("queued", ())


def test_an_identify_without_an_email_is_rejected_and_the_stretch_around_it_stays_one_upsert() -> None:
    ada = "ada@example.com"
    no_email = {"type": "identify", "messageId": "m1", "userId": user_of(ada), "traits": {"firstName": "X"}}
    events = [identify(ada, 0, firstName="Ada"), no_email, identify(ada, 2, seats=2)]

    async def scenario() -> tuple[Tenant, list[StoredEvent]]:
        service = Service(Tenant())
        await service.enqueue(events)
        await service.drain()
        return service.tenant, await service.events()

    tenant, stored = asyncio.run(scenario())
    assert [e.state for e in stored] == ["delivered", "rejected", "delivered"]
    assert stored[1].reason == "email is required for identify"
    assert tenant.calls == [PEOPLE_PATH]
    (person,) = tenant.sim.people_view()
    assert (person["FirstName"], person["Seats__gc"]) == ("Ada", 2)


def test_a_group_with_the_company_s_email_is_ordered_with_its_person() -> None:
    ada = "ada@example.com"
    billing = {**group(ada, 1, "Acme"), "traits": {"name": "Acme", "email": "billing@acme.com"}}
    events = [identify(ada, 0, firstName="Ada"), billing, track(ada, 2)]

    async def scenario() -> tuple[list[list[str]], Tenant]:
        service = Service(Tenant())
        await service.enqueue(events)
        claims = await service.store.claim(service.now, 10, 60)
        await service.deliverer.deliver(claims)
        await service.drain()
        return [[e.message_id for e in c.events] for c in claims], service.tenant

    claimed, tenant = asyncio.run(scenario())
    assert claimed == [["m0", "m1", "m2"]]  # one person, whatever email the group's traits carry
    assert tenant.calls == [SEARCH, INSERT, PEOPLE_PATH, PUBLISH]
    (person,) = tenant.sim.people_view()
    assert person["Email"] == ada and len(person["companies"]) == 1


def test_a_name_respelt_by_a_later_event_is_written_though_its_other_fields_are_stale() -> None:
    """Found by the interleaving property: ada's batch (Acme v2 with Employees, ACME v7) comes
    after bob's (Acme v5 with Employees), so ada's Employees is stale; her Name's new spelling is
    not, and Gainsight must end with the last spelling received, as one by one."""

    def grp(n: int, user: Any, email: str, name: str, **traits: Any) -> dict[str, Any]:
        context = {"traits": {"email": email}}
        traits = {"name": name, **traits}
        return {"type": "group", "userId": user, "traits": traits, "context": context, "messageId": f"m{n}"}

    ada, bob = "ada@example.com", "bob@example.com"
    events = [
        identify(bob, 0, user="7"),
        grp(2, "u-ada", ada, "Acme", employees=1),
        grp(5, "7", bob, "Acme", employees=1),
        grp(7, "u-ada", ada, "ACME"),
    ]

    async def scenario() -> tuple[Tenant, Tenant]:
        reference, tenant = Tenant(), Tenant()
        await one_by_one(reference, events)
        service = Service(tenant)
        await service.enqueue(events)
        await service.drain([1, 3])  # bob's claim, then ada's, delivered side by side
        return reference, tenant

    reference, tenant = asyncio.run(scenario())
    assert [c["Name"] for c in tenant.sim.companies_view()] == ["ACME"]
    assert tenant.state() == reference.state()
