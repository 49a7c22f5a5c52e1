"""Two replicas flush one destination's usage rows at once (DESIGN §3.7, §7): on every backend
(PostgreSQL: two stores on one database, its advisory lock between them), each row is written
once, with its exact count, and a count raised while a flush runs is written by the next one."""

from __future__ import annotations

import asyncio

import pytest

from destination.delivery.store import Store
from destination.delivery.usage_store import UsageKey
from destination.gainsight.executor import Executor
from destination.gainsight.usage import usage_target
from destination.gainsight.usage_flush import FlushReport, UsageFlusher
from destination.simulator.state import COMPANY_GSID_PREFIX, new_gsid
from tests.delivery.conftest import T0, StoreFactory
from tests.delivery.test_person_runs import DESTINATION, Tenant

pytestmark = pytest.mark.anyio

METRICS = ("Report Exported", "Dashboard Viewed")


def replica_flusher(tenant: Tenant, store: Store) -> UsageFlusher:
    assert DESTINATION.config.usage is not None
    executor = Executor(tenant.client, store, unchanged_ttl_seconds=0, clock=lambda: T0)
    return UsageFlusher(
        executor.usage_writer,
        store,
        {DESTINATION.id: DESTINATION},
        {DESTINATION.id: usage_target(DESTINATION.config.usage)},
        clock=lambda: T0,
    )


def usage_rows(tenant: Tenant) -> list[tuple[str, str, str, int]]:
    found = tenant.sim.objects_view("ProductUsage__gc") or []
    return sorted((r["Company__gc"], r["UsageDate__gc"], r["Metric__gc"], r["Count__gc"]) for r in found)


async def test_two_replicas_flushing_the_same_rows_write_each_once(make_store: StoreFactory) -> None:
    tenant = Tenant()
    companies = [new_gsid(COMPANY_GSID_PREFIX) for _ in range(40)]
    for n, gsid in enumerate(companies):
        tenant.sim.companies[gsid] = {"Gsid": gsid, "Name": f"Co {n}"}
    first, second = make_store(), make_store(shared=True)
    keys = [UsageKey(gsid, "2026-12-06", metric) for gsid in companies for metric in METRICS]  # 80 rows
    for n, key in enumerate(keys * 3):
        await (first, second)[n % 2].count_usage(DESTINATION.id, f"m{n}", key, T0)

    reports: list[FlushReport] = await asyncio.gather(
        replica_flusher(tenant, first).flush(DESTINATION.id),
        replica_flusher(tenant, second).flush(DESTINATION.id),
    )
    assert usage_rows(tenant) == sorted((k.company, k.day, k.metric, 3) for k in keys)
    assert sorted(r.rows for r in reports) == [0, 80]
    assert sorted(r.calls for r in reports) == [0, 3]  # one query, inserts of 50 and 30

    await second.count_usage(DESTINATION.id, "late", keys[0], T0)  # after the flush
    again = await asyncio.gather(
        replica_flusher(tenant, first).flush(DESTINATION.id),
        replica_flusher(tenant, second).flush(DESTINATION.id),
    )
    assert sorted((r.rows, r.calls) for r in again) == [(0, 0), (1, 1)]  # one update
    assert (keys[0].company, keys[0].day, keys[0].metric, 4) in usage_rows(tenant)
    assert len(usage_rows(tenant)) == 80
