"""Soak: N events through ingest and delivery against the simulator (DESIGN §8), printing the
service's RSS and the store's size over time, then the store's size after pruning.

Bars: RSS ≤ 200 MB and flat over the last quarter of the run; the store bounded by its retention
(delivered events and their attempts pruned after the dedupe window, the Gsid and delivered-state
memories after theirs), not by history.

Set-up: the simulator runs as Gainsight and the real service (`python -m destination serve`, SQLite
store in a temporary directory) delivers to it, both started by bench/ingest.py's starter, with the
rate budget out of the way on both sides (calls, not budget, are measured). The load generator posts
`/v1/batch` requests of 100 events over `--connections` keep-alive connections (real HTTP, as fast
as the service answers); the events: 60% track, 30% identify, 10% group, `--people` people,
`--companies` companies (messageIds unique). Every `--sample` seconds one line: events ingested and
finished, the queue, the service's RSS (and its anonymous part: heap and stacks, not the mapped
interpreter and libraries), the store on disk (database + write-ahead log). Once every
event has finished, the service is stopped and the store pruned as the service prunes it, with its
clock moved past the retention (dedupe window, 7 days): what is left is the store's floor.

The simulator keeps every event it receives (its own process; not measured here), so a full
1,000,000-event run needs about a gigabyte for it.

Run: python bench/soak.py [--events 1000000] [--people 2000] [--sample 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
import ingest  # noqa: E402  (bench/ingest.py: the shared process starter and HTTP pool)

from destination.delivery.sqlite import SQLiteStore  # noqa: E402
from destination.delivery.store import DEDUPE_WINDOW_SECONDS  # noqa: E402

CONFIG = ingest.sandbox_config("acme.gainsightcloud.com")
BATCH = 100
UNLIMITED = {"per_minute": "100000000", "per_day": "1000000000"}
FINISHED = ("delivered", "unchanged", "filtered", "rejected", "dead")


def event(n: int, people: int, companies: int) -> dict[str, Any]:
    """The n-th event: kinds 6:3:1 (track, identify, group), people and companies in turn."""
    person = (n * 7919) % people
    email = f"user{person}@example.com"
    base = {"messageId": uuid.uuid4().hex, "userId": f"u-{person}"}
    slot = n % 10
    if slot < 6:
        properties = {"ticketId": f"T-{n}", "n": n, "status": "resolved"}
        return {**base, "type": "track", "event": "Ticket Closed", "properties": properties}
    if slot < 9:
        traits = {"email": email, "firstName": f"First{person}", "lastName": "L", "seats": n % 40}
        return {**base, "type": "identify", "traits": traits}
    company = person % companies
    traits = {"name": f"Company {company}", "employees": 10 + company, "region": "EMEA"}
    return {**base, "type": "group", "traits": traits, "context": {"traits": {"email": email}}}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def anonymous_mb(pid: int) -> float:
    """The part of the RSS that is the process's own heap and stacks (not mapped files)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) / 1024
    return 0.0


def on_disk_mb(path: Path) -> float:
    """The store's bytes on disk: the database file and its write-ahead log."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        if part.exists():
            total += part.stat().st_size
    return total / 2**20


def queue(service: ingest.Service) -> dict[str, int]:
    found: dict[str, int] = httpx.get(service.base_url + "/ready", timeout=30).json()["queue"]
    return found


async def push(service: ingest.Service, progress: dict[str, int], args: argparse.Namespace) -> None:
    """Post `args.events` events in batches over `args.connections` connections, counting in
    `progress["ingested"]` the events stored."""
    batches = iter(range(0, args.events, BATCH))

    async def lane(pool: ingest.Pool) -> None:
        for start in batches:
            numbers = range(start, min(start + BATCH, args.events))
            body = orjson.dumps({"batch": [event(n, args.people, args.companies) for n in numbers]})
            status, answer = await pool.post("/v1/batch", body)
            if status != 200:
                raise RuntimeError(f"ingest answered {status}: {answer[:200]!r}")
            progress["ingested"] += orjson.loads(answer)["stored"]

    pool = ingest.Pool(service.base_url)
    await asyncio.gather(*(lane(pool) for _ in range(args.connections)))
    pool.close()


class Samples:
    def __init__(self, service: ingest.Service, store: Path) -> None:
        self.service, self.store = service, store
        self.started = time.monotonic()
        self.rss: list[tuple[float, float]] = []
        self.peak_store = 0.0

    def take(self, ingested: int) -> int:
        counts = queue(self.service)
        finished = sum(counts.get(state, 0) for state in FINISHED)
        elapsed = time.monotonic() - self.started
        pid = self.service.process.pid
        rss, anonymous, size = rss_mb(pid), anonymous_mb(pid), on_disk_mb(self.store)
        self.rss.append((elapsed, rss))
        self.peak_store = max(self.peak_store, size)
        waiting = counts.get("queued", 0) + counts.get("leased", 0)
        print(
            f"{elapsed:7.0f} s  ingested {ingested:>9,}  finished {finished:>9,}  queued {waiting:>9,}  "
            f"RSS {rss:6.1f} MB (anonymous {anonymous:6.1f})  store {size:8.1f} MB",
            flush=True,
        )
        return finished


async def soak(service: ingest.Service, store: Path, args: argparse.Namespace) -> tuple[Samples, float]:
    samples = Samples(service, store)
    progress = {"ingested": 0}
    cpu0 = service.cpu_seconds()
    pushing = asyncio.create_task(push(service, progress, args))
    finished = 0
    while not pushing.done() or finished < progress["ingested"]:
        await asyncio.sleep(args.sample)
        finished = await asyncio.to_thread(samples.take, progress["ingested"])
        if pushing.done() and pushing.exception() is not None:
            raise pushing.exception()  # type: ignore[misc]
    return samples, service.cpu_seconds() - cpu0


def largest_parts(store: Path, top: int = 6) -> str:
    """The tables and indexes taking the most space (SQLite's dbstat)."""
    with sqlite3.connect(store) as conn:
        rows = conn.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT ?", (top,)
        ).fetchall()
    return ", ".join(f"{name} {size / 2**20:.1f} MB" for name, size in rows)


def prune_later(store: Path) -> int:
    """Prune as the service does, with the clock moved past every retention."""

    async def run() -> int:
        opened = SQLiteStore(store)
        try:
            return await opened.prune(time.time() + DEDUPE_WINDOW_SECONDS + 3600)
        finally:
            await opened.close()

    return asyncio.run(run())


def report(samples: Samples, events: int, cpu: float, store: Path) -> None:
    elapsed, rss = samples.rss[-1][0], [r for _, r in samples.rss]
    last_quarter = [r for t, r in samples.rss if t >= elapsed * 0.75] or rss[-1:]
    delivered_mb = on_disk_mb(store)
    print(
        f"\n{events:,} events ingested and finished in {elapsed:.0f} s "
        f"({events / elapsed:,.0f} events/s; service CPU {cpu:.0f} s, {cpu / events * 1000:.3f} CPU-s per "
        "1,000 events)"
    )
    print(
        f"RSS: max {max(rss):.1f} MB (bar <= 200), last quarter {min(last_quarter):.1f}-"
        f"{max(last_quarter):.1f} MB (flat: {max(last_quarter) - min(last_quarter):.1f} MB apart)"
    )
    print(
        f"store: peak {samples.peak_store:.1f} MB, {delivered_mb:.1f} MB with every event finished "
        f"(= {delivered_mb / events * 1e6 / 1024:.2f} GB per million events kept for the dedupe window)"
    )
    print(f"    largest: {largest_parts(store)}")
    started = time.monotonic()
    pruned = prune_later(store)
    print(
        f"after pruning (clock past the 7-day retention): {pruned:,} events pruned in "
        f"{time.monotonic() - started:.1f} s, store {on_disk_mb(store):.2f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--connections", type=int, default=2, help="concurrent ingest connections")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--keep", type=Path, help="an empty directory for the store and logs, kept after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gsd-soak-") as tmp:
        workdir = args.keep or Path(tmp)
        store = workdir / "gsd.sqlite3"
        (workdir / "d.json").write_bytes(orjson.dumps([{"id": "soak", "config": CONFIG}]))
        sim_args = ["simulator", "--rate-limit-per-minute", UNLIMITED["per_minute"]]
        sim_args += ["--rate-limit-per-day", UNLIMITED["per_day"], "--log-level", "warning"]
        with ingest.started(sim_args, {}, "/__sim/counters", workdir) as sim:
            env = {
                "GSD_DESTINATIONS": str(workdir / "d.json"),
                "GSD_STORE_URL": f"sqlite:///{store}",
                "GSD_AUTH": "off",
                "GSD_LOG_LEVEL": "warning",
                "GSD_GAINSIGHT_BASE_URL": sim.base_url,
                "GSD_RATE_LIMIT_PER_MINUTE": UNLIMITED["per_minute"],
                "GSD_RATE_LIMIT_PER_DAY": UNLIMITED["per_day"],
            }
            print(
                f"soak: {args.events:,} events ({args.people:,} people, {args.companies} companies), "
                f"/v1/batch of {BATCH} over {args.connections} connections; sample every {args.sample:g} s",
                flush=True,
            )
            with ingest.started(["serve"], env, "/health", workdir) as service:
                samples, cpu = asyncio.run(soak(service, store, args))
            report(samples, args.events, cpu, store)


if __name__ == "__main__":
    main()
