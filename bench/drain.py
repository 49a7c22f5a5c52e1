"""Delivery drain (DESIGN §8): how fast one process delivers a queued backlog of track events.

Bar: ≥ 500 calls/s on SQLite whether the backlog belongs to 1, 10, 40 or 3,000 people (a person's
backlog must not wait one poll per event).

Set-up, per spread: `--events` track events (default 3,000) spread round-robin over that many
people are written into an empty store through the store API, as ingest writes them; then the
service's own lifespan (`create_app(settings, transport=…)`: workers, governor, executor, all at
their default settings) starts in this process on that store and delivers the backlog. Gainsight
is instant: an in-process httpx transport answers each event call 200 at once (any other call
fails the run). The budget is out of the way (GSD_RATE_LIMIT_PER_MINUTE/DAY huge).

calls/s = calls / seconds from start-up until the last call; a spread not drained within
`--max-seconds` is reported on what it delivered meanwhile. CPU-seconds per 1,000 events: this
process (service, its SQLite thread, the fake Gainsight), plus the PostgreSQL server's processes
when it runs on this machine. Each point is run `--repeat` times.

`--code DIR` runs another checkout's `destination` package (e.g. `--code /work/main` for the
figures before a change); `--store postgresql://…` measures PostgreSQL (a fresh schema per run),
`--store pg` starts a throwaway cluster the way the tests do (tests/pg.py).

Run: python bench/drain.py [--spreads 1,10,40,3000] [--store pg] [--code /work/main]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import ingest  # noqa: E402  (bench/ingest.py: the shared config, schema and CPU helpers)

EVENT_PATH = "/v1.0/api/eventManager/event"


class InstantGainsight(httpx.AsyncBaseTransport):
    """Answers every event call 200 at once; counts calls; any other call is an error."""

    def __init__(self, expected: int) -> None:
        self.calls = 0
        self.last_call = 0.0
        self.expected = expected
        self.unexpected: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != EVENT_PATH:
            self.unexpected.append(f"{request.method} {request.url.path}")
            return httpx.Response(404, json={"result": False, "errorDesc": "unexpected call"})
        self.calls += 1
        self.last_call = time.perf_counter()
        return httpx.Response(200, json={"result": True})


def tracks(events: int, people: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Ticket Closed",
            "messageId": f"m-{n}",
            "userId": f"u-{n % people}",
            "context": {"traits": {"email": f"user{n % people}@example.com"}},
            "properties": {"ticketId": f"T-{n}", "n": n},
        }
        for n in range(events)
    ]


async def enqueue(url: str, events: list[dict[str, Any]]) -> None:
    from destination.delivery.store import NewEvent
    from destination.delivery.stores import open_store
    from destination.events import ordering_key

    store = open_store(url)
    now = time.time()
    for start in range(0, len(events), 500):
        await store.enqueue(
            [
                NewEvent("bench", e["messageId"], ordering_key(e), e["type"], orjson.dumps(e), now)
                for e in events[start : start + 500]
            ]
        )
    await store.close()


async def drain(
    url: str, workdir: Path, events: int, max_seconds: float, server_cpu: Callable[[], float] | None
) -> tuple[int, float, float]:
    """Deliver the queued backlog; (calls, seconds, CPU-seconds)."""
    from destination.app import create_app
    from destination.settings import Settings

    settings = Settings(
        destinations=workdir / "d.json",
        store_url=url,
        rate_limit_per_minute=10**9,
        rate_limit_per_day=10**9,  # PostgreSQL counts in int4
        log_level="warning",
    )
    gainsight = InstantGainsight(events)
    app = create_app(settings, transport=gainsight)
    cpu0, pg0 = time.process_time(), server_cpu() if server_cpu else 0.0
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        while gainsight.calls < events and time.perf_counter() - started < max_seconds:
            await asyncio.sleep(0.02)
        seconds = (gainsight.last_call or time.perf_counter()) - started
        calls = gainsight.calls
        cpu = time.process_time() - cpu0 + (server_cpu() - pg0 if server_cpu else 0.0)
        if calls == events:  # the last fates are recorded: nothing stays queued or leased
            while (counts := await store.counts()).get("queued", 0) + counts.get("leased", 0):
                await asyncio.sleep(0.02)
    if gainsight.unexpected:
        raise RuntimeError(f"unexpected Gainsight calls: {gainsight.unexpected[:3]}")
    return calls, seconds, cpu


@contextmanager
def postgres_server(store: str | None) -> Iterator[tuple[str | None, Callable[[], float]]]:
    """The server's URL and a reading of its CPU-seconds: of the cluster started here (`pg`), or
    of every local `postgres` process (a server given by URL, when it runs on this machine)."""
    if store != "pg":
        yield store, ingest.postgres_cpu_seconds
        return
    sys.path.insert(0, str(ROOT))
    from tests.pg import Cluster

    cluster = Cluster()
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    try:
        yield cluster.url, lambda: cluster_cpu_seconds(postmaster)
    finally:
        cluster.destroy()


def cluster_cpu_seconds(postmaster: int) -> float:
    """User + system CPU of the postmaster and its live children (other engineers' servers on a
    shared machine are not counted)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / ingest.CLOCK_TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spreads", default="1,10,40,3000", help="comma list of people counts")
    parser.add_argument("--events", type=int, default=3000, help="track events queued per run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per spread")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="a run stops after this long")
    parser.add_argument("--store", help="postgresql://… (a schema per run), or `pg` for a throwaway cluster")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose `destination` runs")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    import destination

    print(f"{os.cpu_count()} CPUs; code: {Path(destination.__file__).parent.parent}; ", end="")
    print(f"store: {'PostgreSQL' if args.store else 'SQLite'}; {args.events} track events per run")
    with postgres_server(args.store) as (server, server_cpu):
        for people in (int(p) for p in args.spreads.split(",")):
            figures = []
            for _ in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="gsd-drain-") as tmp:
                    workdir = Path(tmp)
                    config = ingest.sandbox_config("bench.gainsightcloud.com")
                    (workdir / "d.json").write_bytes(orjson.dumps([{"id": "bench", "config": config}]))
                    schema = ingest.store_url(server, workdir) if server else nullcontext(None)
                    with schema as pg_url:
                        url = pg_url or f"sqlite:///{workdir}/q.db"
                        asyncio.run(enqueue(url, tracks(args.events, people)))
                        calls, seconds, cpu = asyncio.run(
                            drain(url, workdir, args.events, args.max_seconds, server_cpu if server else None)
                        )
                figures.append((calls / seconds, cpu / max(calls, 1) * 1000, calls))
            rates = sorted(f[0] for f in figures)
            cpus = sorted(f[1] for f in figures)
            partial = min(f[2] for f in figures) < args.events
            print(
                f"{people:>5} people: {rates[0]:,.0f}-{rates[-1]:,.0f} calls/s"
                f"{' (not drained within --max-seconds)' if partial else ''}; "
                f"CPU-seconds per 1,000 events {cpus[0]:.2f}-{cpus[-1]:.2f}   (bar: >= 500 calls/s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
