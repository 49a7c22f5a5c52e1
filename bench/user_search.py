"""Finding a person's events (`events list --user`, `GET /admin/events?user=`) on a large SQLite store,
and what it costs ingest meanwhile.

A user is read from every payload (no index), so a search walks the whole table. It runs on a
connection of its own (WAL), beside the writer: single-event ingest goes on while it runs.

Set-up: `--events` track events (about 500 bytes each, 3,000 people, userId and email) in a fresh
SQLite store in a temporary directory; then for a userId, an email in another case and a user that
is not there: the search's wall time and CPU time; then the same searches again while one event a
millisecond is enqueued alone (each its own commit), printing the slowest enqueue beside the one
measured with no search running.
Run: python bench/user_search.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson

from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import NewEvent

PEOPLE = 3000


def track(i: int) -> NewEvent:
    payload = {
        "type": "track",
        "messageId": f"m{i}",
        "userId": f"user-{i % PEOPLE}",
        "event": "Ticket Closed",
        "properties": {"ticketId": f"T-{i}", "status": "resolved", "note": "x" * 300},
        "context": {"traits": {"email": f"user{i % PEOPLE}@example.com"}},
    }
    return NewEvent("acme", f"m{i}", f"user-{i % PEOPLE}", "track", orjson.dumps(payload), 1.7e9)


async def slowest_enqueue(store: SQLiteStore, until: asyncio.Future[object], start: int) -> float:
    """Enqueue one event a millisecond until `until` is done; the slowest enqueue, in seconds."""
    slowest, i = 0.0, start
    while not until.done():
        began = time.perf_counter()
        await store.enqueue([track(i)])
        slowest = max(slowest, time.perf_counter() - began)
        i += 1
        await asyncio.sleep(0.001)
    return slowest


async def main(events: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SQLiteStore(Path(directory) / "gsd.sqlite3")
        try:
            for start in range(0, events, 5000):
                await store.enqueue([track(i) for i in range(start, min(start + 5000, events))])
            print(f"{events} events stored")
            searches = ("user-17", "USER17@example.com", "nobody")
            for user in searches:
                wall, cpu = time.perf_counter(), time.process_time()
                found = await store.list_events(user=user, limit=1000)
                print(
                    f"search {user!r}: {len(found)} events, {time.perf_counter() - wall:.3f} s wall, "
                    f"{time.process_time() - cpu:.3f} s CPU"
                )
            idle = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(1.0, idle.set_result, None)
            alone = await slowest_enqueue(store, idle, events)
            print(f"slowest single-event enqueue, no search: {alone * 1000:.1f} ms")
            search = asyncio.ensure_future(asyncio.gather(*(store.list_events(user=u) for u in searches)))
            slowest = await slowest_enqueue(store, search, events + 100_000)
            print(f"slowest single-event enqueue while searching: {slowest * 1000:.1f} ms")
        finally:
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().events))
