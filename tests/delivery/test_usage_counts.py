"""Usage counts on the delivery path (DESIGN §3.7): counted once per messageId, finished `counted`,
written by the flusher as absolute counts, a refused row dead-lettered alone and replayable.
Workers, executor and flusher in one process against the simulator (tests/delivery/test_person_runs.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx

from destination.delivery.store import LastCompany
from destination.errors import OverBudget
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.usage import usage_target
from destination.gainsight.usage_flush import FlushReport, UsageFlusher, next_flush_at, usage_flusher
from destination.jsonutil import dumps, loads
from destination.metrics import Metrics
from destination.simulator.state import COMPANY_GSID_PREFIX, new_gsid
from tests.delivery.conftest import T0
from tests.delivery.test_person_runs import DESTINATION, Service, Tenant

USAGE = "ProductUsage__gc"
OBJECT_WRITES = ("/v1/data/objects/ProductUsage__gc", "/v1/data/objects/query/ProductUsage__gc")


def counted(
    n: int, user: str = "u1", event: str = "Report Exported", at: str = "2026-12-06T10:00:00Z"
) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": user, "messageId": f"c{n}-{user}", "timestamp": at}


def company(tenant: Tenant, name: str) -> str:
    gsid = new_gsid(COMPANY_GSID_PREFIX)
    tenant.sim.companies[gsid] = {"Gsid": gsid, "Name": name}
    return gsid


async def associate(service: Service, **people: str) -> None:
    """Each userId's last company, as a delivered group event would have left it."""
    links = {f"userId:{user}": LastCompany(gsid, 0) for user, gsid in people.items()}
    await service.store.remember_last_companies(service.destination.id, links, service.now)


def flusher(service: Service, replica: Executor | None = None) -> UsageFlusher:
    """The service's flusher; or, with `replica`, another replica's: its own executor and store
    handle (`replica` built on it) on the same data."""
    destination = service.destination
    assert destination.config.usage is not None
    executor = replica or service.executor
    return UsageFlusher(
        executor.usage_writer,
        executor.usage_writer._store,  # type: ignore[arg-type]
        {destination.id: destination},
        {destination.id: usage_target(destination.config.usage)},
        clock=lambda: service.now,
    )


def rows(tenant: Tenant) -> list[tuple[str, str, str, int]]:
    """The usage object's rows: (company, date as written, metric, count)."""
    found = tenant.sim.objects_view(USAGE) or []
    return sorted((r["Company__gc"], r["UsageDate__gc"], r["Metric__gc"], r["Count__gc"]) for r in found)


def object_calls(tenant: Tenant) -> list[tuple[str, str]]:
    return [call for call in tenant.calls if call[1] in OBJECT_WRITES]


def test_counted_events_finish_counted_and_a_flush_writes_each_row_once() -> None:
    tenant = Tenant()
    acme, beta = company(tenant, "Acme"), company(tenant, "Beta")

    async def scenario() -> tuple[Service, FlushReport]:
        service = Service(tenant)
        await associate(service, u1=acme, u2=beta)
        events = [counted(n, "u1") for n in range(3)] + [
            counted(n, "u2", "Dashboard Viewed") for n in range(2)
        ]
        await service.enqueue(events)
        await service.drain()
        assert object_calls(tenant) == []  # counting makes no call: the flusher writes
        return service, await flusher(service).flush(DESTINATION.id)

    service, report = asyncio.run(scenario())
    events = asyncio.run(service.events())
    assert [e.state for e in events] == ["counted"] * 5
    key = f"Company__gc = {acme}, UsageDate__gc = 2026-12-06, Metric__gc = Report Exported"
    assert events[0].history[-1].error == f"counted in ProductUsage__gc under {key}"  # the event's view
    assert rows(tenant) == sorted(
        [(acme, "2026-12-06", "Report Exported", 3), (beta, "2026-12-06", "Dashboard Viewed", 2)]
    )
    assert (report.rows, report.calls) == (2, 2)  # one IN query, one insert
    assert [m for m, _ in object_calls(tenant)] == ["POST", "POST"]


def test_a_second_try_of_a_counted_event_counts_nothing_more() -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")

    async def scenario() -> list[tuple[str, str, str, int]]:
        service = Service(tenant)
        await associate(service, u1=acme)
        await service.enqueue([counted(1), counted(1), counted(2)])  # a duplicate messageId at ingest
        [claim] = await service.store.claim(service.now, 10, 60.0)
        jobs = [job for e in claim.events if (job := await service.deliverer._job(e)) is not None]
        credentials = Credentials.of(DESTINATION.id, DESTINATION.config)
        await service.executor.run([jobs], credentials)  # the worker dies before recording: again
        fates = await service.executor.run([jobs], credentials)
        assert {f.outcome for f in fates.values()} == {"counted"}
        await flusher(service).flush(DESTINATION.id)
        return rows(tenant)

    assert asyncio.run(scenario()) == [(acme, "2026-12-06", "Report Exported", 2)]


def test_counts_go_to_the_utc_day_of_each_event_s_timestamp() -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")

    async def scenario() -> list[tuple[str, str, str, int]]:
        service = Service(tenant)
        await associate(service, u1=acme)
        await service.enqueue(
            [
                counted(1, at="2026-12-06T23:59:59.999Z"),
                counted(2, at="2026-12-07T01:00:00+02:00"),  # 2026-12-06T23:00Z
                counted(3, at="2026-12-07T00:00:00Z"),
            ]
        )
        await service.drain()
        await flusher(service).flush(DESTINATION.id)
        await service.enqueue([counted(4, at="2026-12-07T08:00:00Z")])  # the next day, later on
        await service.drain()
        await flusher(service).flush(DESTINATION.id)
        return rows(tenant)

    assert asyncio.run(scenario()) == [
        (acme, "2026-12-06", "Report Exported", 2),
        (acme, "2026-12-07", "Report Exported", 2),
    ]
    assert [m for m, _ in object_calls(tenant)] == ["POST", "POST", "PUT"]  # query, insert; update


def test_an_insert_whose_answer_is_lost_is_asked_for_again_and_never_doubled() -> None:
    lost: list[int] = []
    tenant = Tenant()
    acme = company(tenant, "Acme")
    original = tenant.client._http._transport  # type: ignore[attr-defined]

    async def answer_lost(request: httpx.Request) -> httpx.Response:
        response = await original.handle_async_request(request)
        if request.method == "POST" and request.url.path == OBJECT_WRITES[0] and not lost:
            lost.append(1)  # written in Gainsight; the answer never arrives
            return httpx.Response(504, json={"result": False, "errorCode": "GU_1101"})
        return response

    tenant.client._http._transport = httpx.MockTransport(answer_lost)  # type: ignore[attr-defined]

    async def scenario() -> tuple[FlushReport, FlushReport]:
        service = Service(tenant)
        await associate(service, u1=acme)
        await service.enqueue([counted(1), counted(2)])
        await service.drain()
        first = await flusher(service).flush(DESTINATION.id)
        await service.enqueue([counted(3)])
        await service.drain()
        return first, await flusher(service).flush(DESTINATION.id)

    first, second = asyncio.run(scenario())
    assert first.rows == 0 and first.stopped is not None
    assert (second.rows, second.calls) == (1, 2)  # the query finds the row (date as epoch ms): update
    assert rows(tenant) == [(acme, "2026-12-06", "Report Exported", 3)]


def refusing(metric: str, switch: list[bool]) -> Any:
    """A tenant hook that refuses, while switch[0], every object write holding a row of `metric`."""

    def refuse(request: httpx.Request) -> httpx.Response | None:
        if not switch[0] or request.url.path != OBJECT_WRITES[0]:
            return None
        records = loads(request.content).get("records", [])
        if any(r.get("Metric__gc") == metric for r in records):
            body = {
                "result": False,
                "errorCode": "GSOBJ_1002",
                "errorDesc": f"Invalid value (Metric__gc = {metric})",
            }
            return httpx.Response(400, content=dumps(body))
        return None

    return refuse


def test_a_refused_row_is_dead_lettered_alone_and_lands_once_replayed() -> None:
    switch = [True]
    tenant = Tenant(refuse=refusing("Dashboard Viewed", switch))
    companies = [company(tenant, f"Co {i}") for i in range(3)]

    async def scenario() -> tuple[FlushReport, Any]:
        service = Service(tenant)
        await associate(service, **{f"u{i}": gsid for i, gsid in enumerate(companies)})
        await service.enqueue(
            [counted(1, f"u{i}") for i in range(3)] + [counted(2, "u1", "Dashboard Viewed")]
        )
        await service.drain()
        report = await flusher(service).flush(DESTINATION.id)
        await service.drain()  # the refused row's own event: tried alone, refused again
        [letter] = await service.store.list_dead_letters(DESTINATION.id)
        dead = await service.store.get_dead_letter(letter.id)
        switch[0] = False  # the tenant's admin fixes the cause
        assert await service.store.replay_dead_letters([letter.id]) == 1
        await service.drain()
        again = await flusher(service).flush(DESTINATION.id)
        assert again.calls == 0  # nothing left to write
        return report, dead

    report, dead = asyncio.run(scenario())
    assert (report.rows, report.refused) == (3, 1)
    assert dead is not None and dead.history[-1].status_code == 400
    assert dead.history[-1].response["errorCode"] == "GSOBJ_1002"
    assert "Dashboard Viewed" in dumps(dead.history[-1].request).decode()
    assert rows(tenant) == sorted(
        [(gsid, "2026-12-06", "Report Exported", 1) for gsid in companies]
        + [(companies[1], "2026-12-06", "Dashboard Viewed", 1)]
    )


def test_an_event_with_no_company_is_filtered_and_counted_as_unattributed() -> None:
    tenant = Tenant()

    async def scenario() -> tuple[Service, Any]:
        service = Service(tenant)
        service.executor = service.deliverer._executor = Executor(  # with the metric wired, as app.py does
            tenant.client,
            service.store,
            unchanged_ttl_seconds=0,
            clock=lambda: service.now,
            unattributed=lambda destination: service.metrics.usage_unattributed.labels(destination).inc(),
        )
        await service.enqueue([counted(1, "nobody"), counted(2, "nobody")])
        await service.drain()
        report = await flusher(service).flush(DESTINATION.id)
        assert report.calls == 0  # unattributed counts are never written
        return service, await service.store.usage_of_day(DESTINATION.id, "2026-12-06")

    service, day = asyncio.run(scenario())
    events = asyncio.run(service.events())
    assert [e.state for e in events] == ["filtered", "filtered"]
    assert "no company" in (events[0].reason or "") and "unattributed" in (events[0].reason or "")
    assert [(r.key.company, r.count) for r in day] == [("", 2)]
    assert service.metrics.usage_unattributed.labels(DESTINATION.id)._value.get() == 2


def test_publish_true_publishes_each_counted_event_once_and_counts_it() -> None:
    usage = {**DESTINATION.config.usage.model_dump(), "events": ["Ticket Closed"], "publish": True}  # type: ignore[union-attr]
    config = DESTINATION.config.model_copy(
        update={"usage": type(DESTINATION.config.usage).model_validate(usage)}
    )
    destination = DESTINATION.model_copy(update={"config": config})
    tenant = Tenant()
    acme = company(tenant, "Acme")

    async def scenario() -> Service:
        service = Service(tenant, destination=destination)
        await associate(service, u1=acme)
        await service.enqueue([counted(1, event="Ticket Closed"), counted(2, event="Ticket Closed")])
        await service.drain()
        await flusher(service).flush(destination.id)
        return service

    service = asyncio.run(scenario())
    assert [e.state for e in asyncio.run(service.events())] == ["counted", "counted"]
    assert [e["eventName"] for e in tenant.sim.events_view()] == ["ticket_closed", "ticket_closed"]
    assert rows(tenant) == [(acme, "2026-12-06", "Ticket Closed", 2)]


def test_two_flushers_on_one_store_write_each_row_once() -> None:
    tenant = Tenant()
    companies = {f"u{i}": company(tenant, f"Co {i}") for i in range(30)}
    metrics = ("Report Exported", "Dashboard Viewed")

    async def scenario() -> list[FlushReport]:
        service = Service(tenant)
        await associate(service, **companies)
        await service.enqueue([counted(n, u, metrics[n % 2]) for n in range(4) for u in companies])
        await service.drain()
        replica = Executor(
            tenant.client, service.store.sharing(), unchanged_ttl_seconds=0, clock=lambda: service.now
        )
        flushes = [flusher(service).flush(DESTINATION.id), flusher(service, replica).flush(DESTINATION.id)]
        return list(await asyncio.gather(*flushes))

    reports = asyncio.run(scenario())
    assert sum(r.rows for r in reports) == 60
    assert len(rows(tenant)) == 60 and {r[3] for r in rows(tenant)} == {2}
    assert sorted(r.calls for r in reports) == [0, 3]  # one query, two inserts (50 + 10); the other: nothing


def test_a_flush_comes_every_interval_and_just_after_each_utc_midnight() -> None:
    midnight = 1_796_515_200.0  # 2026-12-06T00:00:00Z
    assert next_flush_at(midnight + 600, 3600) == midnight + 4200
    assert next_flush_at(midnight + 86_000, 3600) == midnight + 86_400 + 60
    assert next_flush_at(midnight - 30, 3600) == midnight + 60


def test_a_row_deleted_in_gainsight_is_inserted_anew_with_its_absolute_count() -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")

    async def scenario() -> FlushReport:
        service = Service(tenant)
        await associate(service, u1=acme)
        await service.enqueue([counted(1), counted(2)])
        await service.drain()
        await flusher(service).flush(DESTINATION.id)
        tenant.sim.objects[USAGE].clear()  # an admin deletes the row
        await service.enqueue([counted(3)])
        await service.drain()
        return await flusher(service).flush(DESTINATION.id)

    report = asyncio.run(scenario())
    assert (report.rows, report.refused) == (1, 0)
    assert rows(tenant) == [(acme, "2026-12-06", "Report Exported", 3)]


def test_usage_writes_take_the_rate_budget_and_wait_while_it_is_spent() -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")
    spent = [True]

    async def gate(tenant_key: str, step: str = "") -> None:  # the rate governor's gate, as app.py wires it
        if spent[0]:
            raise OverBudget(T0 + 60)

    async def scenario() -> tuple[FlushReport, FlushReport, int]:
        service = Service(tenant)
        await associate(service, u1=acme)
        await service.enqueue([counted(1)])
        await service.drain()
        gated = GainsightClient(tenant.client._http, base_url="http://sim", gate=gate)  # type: ignore[attr-defined]
        executor = Executor(gated, service.store, unchanged_ttl_seconds=0, clock=lambda: service.now)
        flush = usage_flusher(executor, service.store, {DESTINATION.id: DESTINATION}, Metrics())
        refused = await flush.flush(DESTINATION.id)
        spent[0] = False
        written = await flush.flush(DESTINATION.id)
        return refused, written, len(object_calls(tenant))

    refused, written, calls = asyncio.run(scenario())
    assert (refused.rows, refused.calls, refused.stopped) == (0, 0, "the rate budget is spent")
    assert refused.retry_at == T0 + 60  # flushed again when the budget has room, not an hour later
    assert written.rows == 1 and calls == 2  # nothing was sent while the budget was spent
    assert rows(tenant) == [(acme, "2026-12-06", "Report Exported", 1)]


def test_a_batch_reads_its_people_s_last_companies_once_not_once_per_track() -> None:
    tenant = Tenant()
    acme, beta = company(tenant, "Acme"), company(tenant, "Beta")

    async def scenario() -> tuple[list[int], list[tuple[str, str, str, int]]]:
        service = Service(tenant)
        await associate(service, u1=acme, u2=beta)
        reads: list[int] = []
        read = service.store.last_companies

        async def counted_read(destination_id: str, persons: Sequence[str]) -> dict[str, str]:
            reads.append(len(persons))
            return await read(destination_id, persons)

        service.store.last_companies = counted_read  # type: ignore[method-assign]
        await service.enqueue([counted(n, f"u{1 + n % 2}") for n in range(40)])
        claims = await service.store.claim(service.now, 10, 60.0)
        await service.deliverer.deliver(claims)  # both people's 40 tracks in one batch
        await flusher(service).flush(DESTINATION.id)
        return reads, rows(tenant)

    reads, written = asyncio.run(scenario())
    assert reads == [2]  # one read for the batch's two people
    assert written == sorted((gsid, "2026-12-06", "Report Exported", 20) for gsid in (acme, beta))


def test_a_flush_the_budget_stops_keeps_the_refused_rows_it_found() -> None:
    tenant = Tenant(refuse=refusing("Dashboard Viewed", [True]))
    companies = [company(tenant, f"Co {i}") for i in range(2)]
    allowed = [3]  # calls the budget has room for: the search, both rows, the first row alone

    async def gate(tenant_key: str, step: str = "") -> None:
        if allowed[0] <= 0:
            raise OverBudget(T0 + 60)
        allowed[0] -= 1

    async def scenario() -> tuple[FlushReport, FlushReport, int]:
        service = Service(tenant)
        await associate(service, u0=companies[0], u1=companies[1])
        await service.enqueue([counted(1, "u0", "Dashboard Viewed"), counted(2, "u1", "Dashboard Viewed")])
        await service.drain()
        gated = GainsightClient(tenant.client._http, base_url="http://sim", gate=gate)  # type: ignore[attr-defined]
        executor = Executor(gated, service.store, unchanged_ttl_seconds=0, clock=lambda: service.now)
        flush = usage_flusher(executor, service.store, {DESTINATION.id: DESTINATION}, Metrics())
        stopped = await flush.flush(DESTINATION.id)
        allowed[0] = 100
        rest = await flush.flush(DESTINATION.id)
        return stopped, rest, len(await service.store.usage_due(DESTINATION.id, 10))

    stopped, rest, due = asyncio.run(scenario())
    assert (stopped.calls, stopped.refused, stopped.stopped) == (3, 1, "the rate budget is spent")
    assert (rest.calls, rest.refused) == (2, 1)  # the other row, searched and sent alone: no split
    assert due == 0 and rows(tenant) == []  # both held until their dead letters are replayed


def test_an_event_without_a_time_counts_on_the_day_it_was_received_not_the_day_it_is_counted() -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")

    async def scenario() -> list[tuple[str, str, str, int]]:
        service = Service(tenant)
        service.now = 1_796_601_599.0  # 2026-12-06T23:59:59Z: received then
        await associate(service, u1=acme)
        event = {k: v for k, v in counted(1).items() if k != "timestamp"}
        await service.enqueue([event])
        service.now += 60  # counted the next day (a backlog)
        await service.drain()
        await flusher(service).flush(DESTINATION.id)
        return rows(tenant)

    assert asyncio.run(scenario()) == [(acme, "2026-12-06", "Report Exported", 1)]


def test_a_day_after_the_one_received_on_is_counted_on_the_day_received() -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")

    async def scenario() -> list[tuple[str, str, str, int]]:
        service = Service(tenant)
        service.now = 1_796_601_599.0  # received 2026-12-06T23:59:59Z
        await associate(service, u1=acme)
        await service.enqueue(
            [
                counted(1, at="2026-12-07T10:00:00Z"),  # the next UTC day: a clock a little ahead
                counted(2, at="2099-01-01T00:00:00Z"),  # a clock gone wrong
            ]
        )
        await service.drain()
        await flusher(service).flush(DESTINATION.id)
        return rows(tenant)

    assert asyncio.run(scenario()) == [
        (acme, "2026-12-06", "Report Exported", 1),
        (acme, "2026-12-07", "Report Exported", 1),
    ]


def test_a_flush_stopped_early_goes_on_at_its_retry_time_not_an_interval_later() -> None:
    class Flusher(UsageFlusher):
        def __init__(self) -> None:
            self._clock = time.time
            self.flushed: list[float] = []

        async def flush_all(self) -> list[FlushReport]:
            self.flushed.append(time.time())
            retry = time.time() + 0.05 if len(self.flushed) == 1 else None
            return [FlushReport(DESTINATION.id, stopped="budget" if retry else None, retry_at=retry)]

    async def scenario() -> list[float]:
        flusher = Flusher()
        running = asyncio.create_task(flusher.run_forever(3.0))
        try:
            while len(flusher.flushed) < 2:
                await asyncio.sleep(0.01)
            return flusher.flushed
        finally:
            running.cancel()

    first, second = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert second - first < 1.5  # the retry time, 0.05 s on; not the interval, 3 s on
