"""A person's last company association (DESIGN §3.6): remembered in the store as their group
events are delivered, in their order, and read back by the track sinks' CompanyFinder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from destination.delivery.memory import MemoryStore
from destination.delivery.store import ASSOCIATION_RETENTION_SECONDS, LastCompany, Store
from destination.gainsight.client import Credentials
from destination.gainsight.company_source import CompanySource, company_source
from destination.gainsight.jobs import Batch, Job
from destination.gainsight.plan import plan_event
from destination.gainsight.track_company import NO_COMPANY_SECONDS, CompanyFinder
from destination.mapping.spec import default_specs
from tests.delivery.conftest import T0, postgres_schema_at, sqlite_file_at, upgraded
from tests.delivery.test_person_runs import (
    DESTINATION,
    Service,
    Tenant,
    keyed_destination,
    with_crm_companies,
)

ADA = {"userId": "u-ada"}
PERSONS = ["userId:u-ada", "anonymousId:anon"]


def group(n: int, name: str, **ids: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "traits": {"name": name},
        "context": {"traits": {"email": "ada@example.com"}},
        **(ids or ADA),
        "messageId": f"g{n}",
    }


@pytest.mark.anyio
async def test_last_associations_are_kept_per_destination_and_pruned(store: Store) -> None:
    g1, g2 = LastCompany("G1", 1), LastCompany("G2", 2)
    await store.remember_last_companies("acme", {"userId:ada": g1, "userId:bob": g2}, T0)
    await store.remember_last_companies("acme", {"userId:ada": LastCompany("G3", 3)}, T0 + 10)
    await store.remember_last_companies("other", {"userId:ada": LastCompany("G9", 4)}, T0)
    persons = ["userId:ada", "userId:bob", "userId:cy"]
    assert await store.last_companies("acme", persons) == {"userId:ada": "G3", "userId:bob": "G2"}
    assert await store.last_companies("other", persons) == {"userId:ada": "G9"}
    await store.prune(T0 + ASSOCIATION_RETENTION_SECONDS + 5)
    assert await store.last_companies("acme", persons) == {"userId:ada": "G3"}  # written later


@pytest.mark.anyio
async def test_an_association_written_late_by_an_earlier_event_does_not_replace_a_later_one(
    store: Store,
) -> None:
    await store.remember_last_companies("acme", {"userId:ada": LastCompany("G-LATER", 7)}, T0)
    # a worker whose lease lapsed writes the association of an earlier event, after the fact
    await store.remember_last_companies("acme", {"userId:ada": LastCompany("G-EARLIER", 5)}, T0 + 10)
    assert await store.last_companies("acme", ["userId:ada"]) == {"userId:ada": "G-LATER"}
    await store.remember_last_companies("acme", {"userId:ada": LastCompany("G-AGAIN", 7)}, T0 + 20)
    await store.remember_last_companies("acme", {"userId:ada": LastCompany("G-LAST", 9)}, T0 + 30)
    assert await store.last_companies("acme", ["userId:ada"]) == {"userId:ada": "G-LAST"}


def test_a_worker_whose_lease_lapsed_does_not_move_the_association_back() -> None:
    async def scenario() -> tuple[Service, dict[str, str]]:
        service = Service(Tenant(), ttl=0, lease_seconds=15)
        await service.enqueue([group(1, "Acme")])
        stale = await service.store.claim(service.now, 10, 15)
        service.now += 16  # the first worker stalls past its lease; Beta's group event arrives
        await service.enqueue([group(2, "Beta")])
        fresh = await service.store.claim(service.now, 10, 15)
        await service.deliverer.deliver(fresh)  # Acme, then Beta: Beta is the last company
        await service.deliverer.deliver(stale)  # Acme again, late
        return service, await service.store.last_companies(DESTINATION.id, ["userId:u-ada"])

    service, last = asyncio.run(scenario())
    gsids = {c["Name"]: c["Gsid"] for c in service.tenant.sim.companies_view()}
    assert last == {"userId:u-ada": gsids["Beta"]}


def test_the_last_group_event_of_the_person_s_order_is_remembered() -> None:
    async def scenario() -> tuple[Service, dict[str, str]]:
        service = Service(Tenant())
        await service.enqueue([group(1, "Acme"), group(2, "Beta"), group(3, "Gamma", anonymousId="anon")])
        await service.drain([1, 3])
        return service, await service.store.last_companies(
            DESTINATION.id, ["userId:u-ada", "anonymousId:anon"]
        )

    service, last = asyncio.run(scenario())
    gsids = {c["Name"]: c["Gsid"] for c in service.tenant.sim.companies_view()}
    assert last == {"userId:u-ada": gsids["Beta"], "anonymousId:anon": gsids["Gamma"]}


def test_an_unchanged_group_event_still_moves_the_association() -> None:
    async def scenario() -> tuple[Service, dict[str, str]]:
        service = Service(Tenant())
        await service.enqueue([group(1, "Acme"), group(2, "Beta")])
        await service.drain()
        await service.enqueue([{**group(1, "Acme"), "messageId": "again"}])  # no call: unchanged
        await service.drain()
        assert [e.state for e in await service.events()][-1] == "unchanged"
        return service, await service.store.last_companies(DESTINATION.id, ["userId:u-ada"])

    service, last = asyncio.run(scenario())
    gsids = {c["Name"]: c["Gsid"] for c in service.tenant.sim.companies_view()}
    assert last == {"userId:u-ada": gsids["Acme"]}  # Acme again: no longer Beta


# ---- CompanyFinder ----


def finder(tenant: Tenant, store: MemoryStore) -> CompanyFinder:
    return CompanyFinder(tenant.client, store, ttl=0, saved=lambda *_: None, clock=lambda: T0)


def batch_for(config: Any = DESTINATION.config) -> Batch:
    return Batch(
        config.domain or "", Credentials.of(DESTINATION.id, config), skip_unchanged=False, versioned=True
    )


def ada_job() -> Job:
    return Job(1, plan_event(group(1, "Any"), DESTINATION.config, default_specs()), person="userId:u-ada")


def track(context: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "track", "event": "Meeting Booked", **ADA, "messageId": "t1", "context": context or {}}


def test_the_company_comes_from_the_last_association_first() -> None:
    tenant, store = with_crm_companies(Tenant()), MemoryStore()
    keyed = keyed_destination(create=False).config

    async def scenario() -> Any:
        await store.remember_last_companies(DESTINATION.id, {"userId:u-ada": LastCompany("G-LAST", 1)}, T0)
        source = company_source(track({"groupId": "K1"}), keyed)
        return await finder(tenant, store).find(batch_for(keyed), ada_job(), source)

    found = asyncio.run(scenario())
    assert (found.gsid, found.failed, tenant.calls) == ("G-LAST", None, [])


@pytest.mark.parametrize(("group_id", "expected"), [("K1", "Crm One"), ("K404", None)])
def test_without_an_association_the_group_id_is_searched_through_company_identity(
    group_id: str, expected: str | None
) -> None:
    tenant, store = with_crm_companies(Tenant()), MemoryStore()
    keyed = keyed_destination(create=False).config

    async def scenario() -> tuple[Any, Any]:
        source = company_source(track({"groupId": group_id}), keyed)
        job = ada_job()
        first = await finder(tenant, store).find(batch_for(keyed), job, source)
        again = await finder(tenant, store).find(batch_for(keyed), job, source)
        return first, again

    first, again = asyncio.run(scenario())
    names = {c["Gsid"]: c["Name"] for c in tenant.sim.companies_view()}
    assert (names.get(first.gsid) if first.gsid else None) == expected
    assert again.gsid == first.gsid
    searches = len(tenant.calls)
    assert searches == (1 if expected else 2)  # a found Gsid is remembered; an absent one is not


def test_no_company_identity_or_no_group_id_means_no_company() -> None:
    assert company_source(track({"groupId": "K1"}), DESTINATION.config) == CompanySource()
    assert company_source(track(), keyed_destination(create=True).config) == CompanySource()
    assert company_source(track({"groupId": 42}), keyed_destination(create=True).config) == CompanySource(
        "SfdcAccountId", "42"
    )


def test_a_group_id_that_names_no_company_is_not_searched_again_for_a_while() -> None:
    tenant, store, now = with_crm_companies(Tenant()), MemoryStore(), [T0]
    keyed = keyed_destination(create=False).config
    finding = CompanyFinder(tenant.client, store, ttl=0, saved=lambda *_: None, clock=lambda: now[0])

    async def scenario() -> list[Any]:
        source = company_source(track({"groupId": "K404"}), keyed)
        found = [await finding.find(batch_for(keyed), ada_job(), source) for _ in range(3)]
        now[0] += NO_COMPANY_SECONDS + 1
        return [*found, await finding.find(batch_for(keyed), ada_job(), source)]

    found = asyncio.run(scenario())
    assert [f.gsid for f in found] == [None] * 4
    assert len(tenant.calls) == 2  # once, then once more after NO_COMPANY_SECONDS


# ---- associations remembered before the event id was (SQLite step 9, PostgreSQL step 7) ----

OLD_ASSOCIATION = (
    "INSERT INTO last_companies (destination_id, person, gsid, associated_at) "
    "VALUES ('acme', 'userId:ada', 'G-OLD', 1.0)"
)


async def older_associations_give_way(store: Store) -> None:
    assert await store.last_companies("acme", ["userId:ada"]) == {"userId:ada": "G-OLD"}
    await store.remember_last_companies("acme", {"userId:ada": LastCompany("G-NEW", 1)}, T0)
    assert await store.last_companies("acme", ["userId:ada"]) == {"userId:ada": "G-NEW"}


@pytest.mark.anyio
async def test_an_association_of_a_sqlite_file_before_step_9_gives_way_to_any_new_one(tmp_path: Path) -> None:
    await upgraded(sqlite_file_at(tmp_path / "v8.sqlite3", 8, [OLD_ASSOCIATION]), older_associations_give_way)


@pytest.mark.anyio
async def test_an_association_of_a_postgresql_schema_before_step_7_gives_way_to_any_new_one(
    postgres_url: str,
) -> None:
    await upgraded(postgres_schema_at(postgres_url, 6, [OLD_ASSOCIATION]), older_associations_give_way)
