"""A day of product usage as usage counts (DESIGN §3.7, §8): `python bench/efficiency.py --usage`.

Workload (seed 7): 100,000 track events over one UTC day (today), 1,000 people, 200 companies
(person p belongs to company p mod 200), 20 counted event names: at most 4,000 rows.

Set-up: the simulator (in process, budget out of the way) holds the 200 companies, and the store
remembers each person's company, as their group events (delivered before this day) left it: those
calls are not part of the day. Then the real delivery path counts the events: store (SQLite by
default), workers, executor, the usage sink; and the flusher writes the rows. Calls are what the
simulator received. Two ways the day arrives:

- as a backlog: every event queued, counted, then one flush. Bar: ≤ 100 calls;
- spread over 24 flush intervals (a simulated clock: each hour's events are queued and counted,
  then the flush runs). Bar: ≤ 24 x (⌈rows changed / 50⌉ + 1) computed from each interval's
  changed rows, about 2,000.

Every count is checked against the events: the simulator's rows must equal them exactly.
"""

from __future__ import annotations

import asyncio
import math
import random
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from destination.config import Destination
from destination.delivery.governor import RateGovernor, RateWindow
from destination.delivery.memory import MemoryStore
from destination.delivery.retry import RetryPolicy
from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import NO_BOUND, Calls, LastCompany, NewEvent, Store
from destination.delivery.usage_store import utc_day
from destination.delivery.worker import Deliverer, WorkerSettings
from destination.events import ordering_key
from destination.gainsight.client import GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.usage import usage_target
from destination.gainsight.usage_flush import UsageFlusher
from destination.jsonutil import dumps
from destination.mapping.spec import default_specs
from destination.metrics import Metrics
from destination.simulator import SimulatorConfig, create_simulator_app

METRICS = [f"Feature {n:02d} Used" for n in range(20)]
INTERVALS = 24
FIELDS = {"company": "Company__gc", "date": "UsageDate__gc", "metric": "Metric__gc", "count": "Count__gc"}


def workload(seed: int, events: int, people: int, day_start: float) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    stamps = sorted(day_start + rng.random() * 86_400 for _ in range(events))
    out = []
    for n, at in enumerate(stamps):
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
        out.append(
            {
                "type": "track",
                "messageId": f"u-{n}",
                "userId": f"p{rng.randrange(people)}",
                "event": rng.choice(METRICS),
                "timestamp": iso,
                "properties": {"n": n},
            }
        )
    return out


class Day:
    """The service's delivery path and flusher, on a store, against an in-process simulator."""

    def __init__(self, store: Store, destination: Destination, companies: int) -> None:
        config = SimulatorConfig.sandbox(rate_limit_per_minute=10**9, rate_limit_per_day=10**9)
        self.sim_app = create_simulator_app(config)
        self.sim = self.sim_app.state.simulator
        self.gsids = [f"1P02{n:032X}" for n in range(companies)]
        for n, gsid in enumerate(self.gsids):
            self.sim.companies[gsid] = {"Gsid": gsid, "Name": f"Company {n}"}
        self.calls: Counter[str] = Counter()
        asgi = httpx.ASGITransport(app=self.sim_app)

        async def counted(request: httpx.Request) -> httpx.Response:
            self.calls[f"{request.method} {request.url.path}"] += 1
            return await asgi.handle_async_request(request)

        client = GainsightClient(
            httpx.AsyncClient(transport=httpx.MockTransport(counted)), base_url="http://sim"
        )
        self.store, self.destination = store, destination
        self.executor = Executor(client, store, unchanged_ttl_seconds=0, clock=time.time)
        self.deliverer = Deliverer(
            store=store,
            destinations={destination.id: destination},
            specs=default_specs(),
            executor=self.executor,
            governor=RateGovernor(store, (RateWindow("minute", 60, 10**9),), guard_seconds=0),
            gate=None,
            policy=RetryPolicy(max_attempts=3),
            metrics=Metrics(),
            settings=WorkerSettings(lease_seconds=600),
        )
        assert destination.config.usage is not None
        self.flusher = UsageFlusher(
            self.executor.usage_writer,
            store,
            {destination.id: destination},
            {destination.id: usage_target(destination.config.usage)},
            clock=time.time,
        )

    async def associate(self, people: int) -> None:
        links = {f"userId:p{p}": LastCompany(self.gsids[p % len(self.gsids)], 0) for p in range(people)}
        await self.store.remember_last_companies(self.destination.id, links, time.time())

    async def count(self, events: Sequence[dict[str, Any]]) -> None:
        """Queue the events and deliver (count) them all."""
        now = time.time()
        new = [
            NewEvent(self.destination.id, e["messageId"], ordering_key(e), "track", dumps(e), now)
            for e in events
        ]
        for start in range(0, len(new), 5000):
            await self.store.enqueue(new[start : start + 5000])
        while claims := await self.store.claim(time.time(), 1000, 600.0, Calls(100_000, NO_BOUND.timeline)):
            await self.deliverer.deliver(claims)

    async def flush(self) -> tuple[int, int]:
        """(calls, rows written) of one flush."""
        before = sum(self.calls.values())
        report = await self.flusher.flush(self.destination.id)
        assert report.stopped is None and report.refused == 0, report
        return sum(self.calls.values()) - before, report.rows

    def rows(self) -> Counter[tuple[str, str, str]]:
        found = self.sim.objects_view("ProductUsage__gc") or []
        keys = [(r["Company__gc"], r["UsageDate__gc"], r["Metric__gc"]) for r in found]
        assert len(keys) == len(set(keys)), "a row was written twice"
        return Counter({key: r["Count__gc"] for key, r in zip(keys, found, strict=True)})


def expected(day: Day, events: Sequence[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (day.gsids[int(e["userId"][1:]) % len(day.gsids)], e["timestamp"][:10], e["event"]) for e in events
    )


def destination() -> Destination:
    import ingest  # bench/ingest.py

    usage = {"object": "ProductUsage__gc", "fields": FIELDS, "events": METRICS}
    config = {**ingest.sandbox_config("acme.gainsightcloud.com"), "usage": usage}
    return Destination.model_validate({"id": "bench", "config": config})


def open_store(kind: str, workdir: Path) -> Store:
    return MemoryStore() if kind == "memory" else SQLiteStore(workdir / "usage.sqlite3")


async def backlog(events: list[dict[str, Any]], args: Any, workdir: Path) -> bool:
    day = Day(open_store(args.store, workdir / "a"), destination(), args.companies)
    await day.associate(args.people)
    cpu, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await day.count(events)
    wall, used = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    calls, rows = await day.flush()
    exact = day.rows() == expected(day, events)
    print(
        f"as a backlog: {calls} Gainsight calls for {rows} rows (bar: <= 100); every count exact: {exact}\n"
        f"  counting: {len(events) / wall:,.0f} events/s, {cpu_seconds / len(events) * 1000:.2f} "
        f"CPU-seconds per 1,000 events ({args.store} store)"
    )
    await day.store.close()
    return exact and calls <= 100


async def spread(events: list[dict[str, Any]], args: Any, workdir: Path) -> bool:
    day = Day(open_store(args.store, workdir / "s"), destination(), args.companies)
    await day.associate(args.people)
    per_hour = [[e for e in events if int(e["timestamp"][11:13]) == hour] for hour in range(INTERVALS)]
    calls = bar = 0
    changed: list[int] = []
    for hour_events in per_hour:
        await day.count(hour_events)
        made, rows = await day.flush()
        calls += made
        changed.append(rows)
        bar += math.ceil(rows / 50) + 1
    exact = day.rows() == expected(day, events)
    print(
        f"spread over {INTERVALS} flush intervals: {calls} Gainsight calls "
        f"(bar: <= 24 x (ceil(rows changed/50) + 1) = {bar}); rows changed per flush "
        f"{min(changed)}-{max(changed)}; every count exact: {exact}"
    )
    await day.store.close()
    return exact and calls <= bar


def run(args: Any) -> bool:
    day_start = math.floor(time.time() / 86_400) * 86_400
    events = workload(args.seed, args.events, args.people, day_start)
    rows = len({(int(e["userId"][1:]) % args.companies, e["event"]) for e in events})
    print(
        f"usage workload: seed {args.seed}, {len(events):,} track events on {utc_day(day_start)}, "
        f"{args.people} people, {args.companies} companies, {len(METRICS)} counted event names: {rows} rows"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "a").mkdir()
        (workdir / "s").mkdir()
        ok = asyncio.run(backlog(events, args, workdir))
        ok = asyncio.run(spread(events, args, workdir)) and ok
    print(f"the same day published one by one (the reference): {len(events):,} calls")
    return ok


def arguments(argv: Sequence[str]) -> Any:
    import argparse

    parser = argparse.ArgumentParser(description="a day of product usage as usage counts")
    parser.add_argument("--usage", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--companies", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    return parser.parse_args(argv)
