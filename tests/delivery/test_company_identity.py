"""Companies keyed by the tenant's own field (DESIGN §3.3, `companyIdentity`), through the whole
delivery path (store → workers → executor) against the simulator: a rename updates one company,
one name under two keys is two companies, update-only never inserts, and what cannot be decided
(no company, two companies, no key) ends the event as rejected with its reason, never guessed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from destination.config import Destination
from destination.config_sections import CompanyIdentity
from destination.delivery.memory import MemoryStore
from destination.delivery.store import StoredEvent
from destination.errors import GainsightError, OverBudget
from destination.gainsight.client import Credentials
from destination.gainsight.executor import Executor
from destination.sandbox import sandbox_destination
from destination.simulator.state import COMPANY_GSID_PREFIX, new_gsid
from tests.delivery.test_person_runs import SPECS, Service, Tenant

ADA = "ada@example.com"
BOB = "bob@example.com"


def keyed(create: bool = True, source: str = "groupId") -> Destination:
    sandbox = sandbox_destination()
    identity = CompanyIdentity.model_validate({"field": "SfdcAccountId", "from": source, "create": create})
    return sandbox.model_copy(
        update={"config": sandbox.config.model_copy(update={"company_identity": identity})}
    )


def group(n: int, key: str | None, name: str | None = None, who: str = ADA, **traits: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "group",
        "messageId": f"m{n}",
        "userId": who,
        "traits": {**({"name": name} if name is not None else {}), **traits},
        "context": {"traits": {"email": who}},
    }
    if key is not None:
        event["groupId"] = key
    return event


def deliver(tenant: Tenant, destination: Destination, *batches: list[dict[str, Any]]) -> list[StoredEvent]:
    async def scenario() -> list[StoredEvent]:
        service = Service(tenant, destination=destination)
        for events in batches:
            await service.enqueue(events)
            await service.drain()
        return await service.events()

    return asyncio.run(scenario())


def companies(tenant: Tenant) -> list[dict[str, Any]]:
    return sorted(
        ({k: c.get(k) for k in ("Name", "SfdcAccountId", "Employees")} for c in tenant.sim.companies_view()),
        key=lambda c: (str(c["SfdcAccountId"]), str(c["Name"])),
    )


def linked(tenant: Tenant, email: str) -> list[str]:
    (person,) = [p for p in tenant.sim.people_view() if p["Email"] == email]
    return sorted(link["Company_ID"] for link in person["companies"])


def crm_company(tenant: Tenant, key: str, name: str) -> str:
    """A company the tenant's CRM made (not this service)."""
    gsid = new_gsid(COMPANY_GSID_PREFIX)
    tenant.sim.companies[gsid] = {**tenant.sim.creation_fields(gsid), "Name": name, "SfdcAccountId": key}
    return gsid


def test_a_renamed_company_stays_one_company() -> None:
    tenant = Tenant()
    events = deliver(
        tenant, keyed(), [group(1, "001A", "Acme")], [group(2, "001A", "Acme Inc", employees=12)]
    )
    assert {e.state for e in events} == {"delivered"}
    assert companies(tenant) == [{"Name": "Acme Inc", "SfdcAccountId": "001A", "Employees": 12}]
    assert len(linked(tenant, ADA)) == 1


def test_one_name_under_two_keys_is_two_companies() -> None:
    tenant = Tenant()
    deliver(tenant, keyed(), [group(1, "G-1", "Globex"), group(2, "G-2", "Globex", who=BOB)])
    assert companies(tenant) == [
        {"Name": "Globex", "SfdcAccountId": "G-1", "Employees": None},
        {"Name": "Globex", "SfdcAccountId": "G-2", "Employees": None},
    ]
    assert linked(tenant, ADA) != linked(tenant, BOB)


def test_events_of_one_claim_share_one_search_and_one_insert() -> None:
    tenant = Tenant()
    deliver(tenant, keyed(), [group(i, f"K{i}", f"Company {i}", who=f"p{i}@example.com") for i in range(5)])
    steps = [call for call in tenant.calls if call[1].startswith("/v1/data/objects")]
    assert steps == [
        ("POST", "/v1/data/objects/query/Company"),
        ("POST", "/v1/data/objects/Company"),
    ]


def test_update_only_writes_the_crm_s_company_but_never_its_name() -> None:
    tenant = Tenant()
    gsid = crm_company(tenant, "001I", "Initech Corporation")
    events = deliver(tenant, keyed(create=False), [group(1, "001I", "Initech", employees=300)])
    assert [e.state for e in events] == ["delivered"]
    assert companies(tenant) == [{"Name": "Initech Corporation", "SfdcAccountId": "001I", "Employees": 300}]
    assert linked(tenant, ADA) == [gsid]
    assert ("POST", "/v1/data/objects/Company") not in tenant.calls


def test_update_only_rejects_an_unknown_key_naming_it_and_inserts_nothing() -> None:
    tenant = Tenant()
    (event,) = deliver(tenant, keyed(create=False), [group(1, "001X", "Nobody")])
    assert event.state == "rejected"
    assert event.reason == "no Company with SfdcAccountId = 001X; creating companies is off"
    assert tenant.sim.companies_view() == []
    assert ("POST", "/v1/data/objects/Company") not in tenant.calls
    assert tenant.sim.people_view() == []  # nor is the person associated with anything


def test_two_companies_with_one_key_reject_the_event_naming_both() -> None:
    tenant = Tenant()
    first, second = crm_company(tenant, "DUP", "One"), crm_company(tenant, "DUP", "Two")
    (event,) = deliver(tenant, keyed(), [group(1, "DUP", "Whichever")])
    assert event.state == "rejected"
    assert event.reason is not None and first in event.reason and second in event.reason
    assert "2 Companies have SfdcAccountId = DUP" in event.reason
    assert len(tenant.sim.companies_view()) == 2


def test_a_group_without_the_key_is_rejected() -> None:
    tenant = Tenant()
    (event,) = deliver(tenant, keyed(), [group(1, None, "Acme")])
    assert event.state == "rejected"
    assert event.reason == "groupId is required for group: companies are keyed by SfdcAccountId from it"
    assert tenant.calls == []


def test_a_name_is_needed_only_to_create() -> None:
    tenant = Tenant()
    crm_company(tenant, "001A", "Acme")
    known, unknown = deliver(tenant, keyed(), [group(1, "001A", employees=5), group(2, "001B", who=BOB)])
    assert known.state == "delivered"
    assert unknown.state == "rejected"
    assert unknown.reason == "no Company with SfdcAccountId = 001B; traits.name is required to create it"


def test_the_key_can_come_from_a_trait_and_its_gsid_is_remembered() -> None:
    tenant = Tenant()
    destination = keyed(source="traits.sfdcAccountId")
    deliver(
        tenant,
        destination,
        [group(1, None, "Acme", sfdcAccountId="S1")],
        [group(2, None, "Acme Inc", who=BOB, sfdcAccountId="S1")],
    )
    searches = [call for call in tenant.calls if call == ("POST", "/v1/data/objects/query/Company")]
    assert len(searches) == 1  # the second event's company: its Gsid is known
    assert companies(tenant) == [{"Name": "Acme Inc", "SfdcAccountId": "S1", "Employees": None}]
    assert linked(tenant, ADA) == linked(tenant, BOB)


def test_a_rejected_group_is_delivered_when_replayed_once_its_company_exists() -> None:
    tenant = Tenant()

    async def scenario() -> list[StoredEvent]:
        service = Service(tenant, destination=keyed(create=False))
        await service.enqueue([group(1, "LATER", "Later Ltd")])
        await service.drain()
        (rejected,) = await service.events()
        assert rejected.state == "rejected"
        crm_company(tenant, "LATER", "Later Ltd")  # the CRM creates it
        assert await service.store.replay_dead_letters(ids=[rejected.id]) == 1
        await service.drain()
        return await service.events()

    (event,) = asyncio.run(scenario())
    assert event.state == "delivered"
    assert [a.outcome for a in event.history] == ["rejected", "delivered"]
    assert len(linked(tenant, ADA)) == 1


def test_a_nameless_event_before_the_one_that_names_a_new_company_is_rejected_as_alone() -> None:
    tenant = Tenant()
    early, named = deliver(
        tenant, keyed(), [group(1, "NEW", None, employees=5), group(2, "NEW", "New Co", who=BOB)]
    )
    assert early.state == "rejected"
    assert early.reason == "no Company with SfdcAccountId = NEW; traits.name is required to create it"
    assert named.state == "delivered"
    # Written as sending them one by one leaves it: without the rejected event's fields.
    assert companies(tenant) == [{"Name": "New Co", "SfdcAccountId": "NEW", "Employees": None}]
    assert [p["Email"] for p in tenant.sim.people_view()] == [BOB]


# ---- a merged company write refused (4xx): redone event by event, only its cause fails ----


def refuse_employees_666(request: httpx.Request) -> httpx.Response | None:
    if request.url.path != "/v1/data/objects/Company" or request.method not in ("PUT", "POST"):
        return None
    if any(r.get("Employees") == 666 for r in orjson.loads(request.content)["records"]):
        body = {"result": False, "errorCode": "GSOBJ_VDTNUM1002", "errorDesc": "number out of range"}
        return httpx.Response(400, json=body)
    return None


def test_a_refused_event_s_fields_are_not_remembered_as_delivered() -> None:
    tenant = Tenant(refuse_employees_666)
    crm_company(tenant, "K1", "Crm One")
    ok, refused, later = deliver(
        tenant,
        keyed(),
        [
            group(1, "K1", "Crm One", employees=10),
            group(2, "K1", "Crm One", who=BOB, employees=666, stage="Live"),
        ],
        [group(3, "K1", "Crm One", who="cy@example.com", stage="Live")],
    )
    assert (ok.state, refused.state, later.state) == ("delivered", "dead", "delivered")
    # The refused event's Stage never reached Gainsight: the later event's must be written.
    assert tenant.sim.companies_view()[0]["Stage"] == "Live"


def test_a_budget_spent_while_redoing_a_refused_write_defers_the_untried_events() -> None:
    tenant = Tenant(refuse_employees_666)
    crm_company(tenant, "K1", "Crm One")
    send = tenant.client.send_described
    company_calls = 0

    async def spent_at_the_fifth_company_call(request: Any, credentials: Any) -> Any:
        nonlocal company_calls
        if request.step.startswith("company"):
            company_calls += 1
            if company_calls == 5:
                raise OverBudget(time.time() + 30)
        return await send(request, credentials)

    tenant.client.send_described = spent_at_the_fifth_company_call  # type: ignore[method-assign]

    async def scenario() -> list[StoredEvent]:
        service = Service(tenant, destination=keyed())
        events = [
            group(1, "K1", "Crm One", employees=10),
            group(2, "K1", "Crm One", who=BOB, employees=666),
            group(3, "K1", "Crm One", who="cy@example.com", stage="Live"),
        ]
        await service.enqueue(events)
        await service.deliverer.deliver(await service.store.claim(service.now, 10, 60))
        return await service.events()

    first, refused, untried = asyncio.run(scenario())
    assert first.state == "delivered"  # written alone before the budget ran out
    assert (refused.state, untried.state) == ("queued", "queued")  # not dead: they wait
    assert tenant.sim.companies_view()[0]["Employees"] == 10


def test_destinations_that_may_and_may_not_create_are_each_answered_as_alone() -> None:
    """One tenant, one key, two destinations (the transformer routes batch their items): an
    update-only event before one that may create is rejected; after it, it updates."""
    from destination.gainsight.plan import plan_event

    tenant = Tenant()
    plans = [
        plan_event(group(1, "K9", "Nine"), keyed(create=create).config, SPECS)
        for create in (False, True, False)
    ]
    executor = Executor(tenant.client, MemoryStore(), unchanged_ttl_seconds=0, clock=time.time)
    credentials = Credentials.of("acme", keyed().config)
    results = asyncio.run(executor.write_companies(plans, credentials))  # type: ignore[arg-type]
    assert isinstance(results[0], GainsightError) and "creating companies is off" in str(results[0])
    assert isinstance(results[1], str) and results[2] == results[1]
    assert [c["SfdcAccountId"] for c in tenant.sim.companies_view()] == ["K9"]
