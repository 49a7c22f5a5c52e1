"""What the capacity forecast costs to read (GET /admin/capacity, /status, /metrics each read it):
the store's capacity reads on a large store.

Set-up: `--events` track events (20 event names, `--people` people) received over the last hour
are written into an empty store (SQLite by default, or `--store URL`) in batches of 1,000; the
oldest `--finished` of them are then claimed and delivered, each with one attempt that rode on a
call of its own. Then the forecast of the one destination is read `--repeat` times; the wall time
and the process's CPU time per read are printed (median and worst).

Run: python bench/capacity_reads.py [--events 1000000] [--finished 50000] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from destination.capacity_facts import capacity  # noqa: E402
from destination.config import parse_destination_config  # noqa: E402
from destination.delivery.store import NO_BOUND, Attempt, Calls, NewEvent, Store  # noqa: E402
from destination.delivery.stores import open_store  # noqa: E402
from destination.settings import Settings  # noqa: E402

CONFIG = {
    "domain": "bench.gainsightcloud.com",
    "accessKey": "ak",
    "sharedSecret": "ss",
    "tenantId": "t",
    "topicName": "Bench",
}


async def fill(store: Store, events: int, people: int, finished: int) -> None:
    start = time.time() - 3500
    for first in range(0, events, 1000):
        batch = []
        for n in range(first, min(first + 1000, events)):
            body = {
                "type": "track",
                "userId": f"u{n % people}",
                "event": f"Event {n % 20}",
                "messageId": f"m{n}",
            }
            at = start + 3400 * n / events
            batch.append(NewEvent("bench", f"m{n}", f"userId:u{n % people}", "track", orjson.dumps(body), at))
        await store.enqueue(batch)
    done = 0
    while done < finished:
        claims = await store.claim(time.time(), min(500, finished - done), 60.0, Calls(1, NO_BOUND.timeline))
        if not claims:
            break
        for claim in claims:
            head = claim.events[0]
            attempt = Attempt(time.time(), "delivered", 200, call=f"c{head.id}")
            await store.complete(head.id, "delivered", lease=claim.lease, attempt=attempt)
            done += 1


async def measure(url: str, args: argparse.Namespace) -> None:
    store = open_store(url)
    try:
        began = time.perf_counter()
        await fill(store, args.events, args.people, args.finished)
        print(
            f"store filled in {time.perf_counter() - began:.1f} s: "
            f"{args.events:,} events, {args.finished:,} finished"
        )
        configs = {"bench": parse_destination_config(CONFIG)}
        settings = Settings()
        walls, cpus = [], []
        for _ in range(args.repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            [answer] = await capacity(store, configs, settings)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        print(
            f"forecast read: median {statistics.median(walls) * 1000:.0f} ms wall "
            f"({statistics.median(cpus) * 1000:.0f} ms CPU in this process), "
            f"worst {max(walls) * 1000:.0f} ms; "
            f"backlog {answer['backlogEvents']:,}, {answer['arrivalPerMinute']:,} events a minute, "
            f"fits={answer['fits']}"
        )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--finished", type=int, default=50_000)
    parser.add_argument("--people", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", default=None, help="a store URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        url = args.store or f"sqlite:///{Path(workdir) / 'gsd.sqlite3'}"
        asyncio.run(measure(url, args))


if __name__ == "__main__":
    main()
