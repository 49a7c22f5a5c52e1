"""What only the SQLite store promises: durability, group commit, several processes on one file."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from destination.delivery.sqlite import SQLiteStore
from destination.delivery.sqlite_writer import SQLiteWriter
from destination.delivery.store import Store, StoreError
from tests.delivery.conftest import T0, claim_events, event
from tests.delivery.test_store_budget import take_from_threads

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]

# Enqueues from 8 concurrent tasks and prints each messageId once its enqueue has returned.
INGEST_UNTIL_KILLED = """
import asyncio, sys
from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import NewEvent

async def ingest(store, lane):
    for i in range(10**9):
        mid = f"m{lane}-{i}"
        await store.enqueue([NewEvent("acme", mid, f"p{i % 5}", "track", b"{}", 1.0)])
        print(mid, flush=True)

async def main():
    store = SQLiteStore(sys.argv[1])
    await asyncio.gather(*(ingest(store, lane) for lane in range(8)))

asyncio.run(main())
"""


async def test_enqueued_rows_are_visible_to_another_connection_once_enqueue_returns(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = SQLiteStore(path)
    try:
        await store.enqueue([event("m1"), event("m2", "bob")])
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT message_id FROM events ORDER BY id").fetchall() == [("m1",), ("m2",)]
    finally:
        await store.close()


async def test_every_acknowledged_event_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", INGEST_UNTIL_KILLED, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    acknowledged = [child.stdout.readline().strip() for _ in range(400)]
    assert all(acknowledged), "the ingesting child stopped before it was killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    acknowledged += [line.strip() for line in child.stdout if line.endswith("\n")]

    store = SQLiteStore(path)
    try:
        again = await store.enqueue([event(mid, at=1.0) for mid in acknowledged])
        assert not any(again), "an acknowledged event was lost"
        assert (await store.counts())["queued"] >= len(acknowledged)
    finally:
        await store.close()


async def test_state_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = SQLiteStore(path)
    await store.enqueue([event("a1", "ada"), event("a2", "ada", at=T0 + 1), event("b1", "bob")])
    claimed = await claim_events(store, T0, 10, 30.0)  # a1 and b1: a2 is not due yet
    await store.dead_letter(claimed[0].id, "bad", lease=claimed[0].lease)
    await store.take_budget("acme", [("minute", 60.0, 1)])
    await store.close()

    store = SQLiteStore(path)
    try:
        assert await store.counts() == {
            "queued": 1,
            "leased": 1,
            "delivered": 0,
            "unchanged": 0,
            "counted": 0,
            "filtered": 0,
            "rejected": 0,
            "dead": 1,
        }
        assert [d.message_id for d in await store.list_dead_letters()] == ["a1"]
        assert await store.take_budget("acme", [("minute", 60.0, 1)]) == "minute"
        assert [e.message_id for e in await claim_events(store, T0 + 30, 10, 30.0)] == ["a2", "b1"]
    finally:
        await store.close()


async def test_a_file_from_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    await SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        SQLiteStore(path)


def counting_writer(path: Path, begins: list[str]) -> SQLiteWriter:
    """A writer on a scratch table that notes every BEGIN it issues."""

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL)")
        conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None)
        return conn

    return SQLiteWriter(connect)


async def run_grouped_behind_a_busy_writer(
    writer: SQLiteWriter, jobs: list[Callable[[sqlite3.Connection], int]]
) -> list[int | BaseException]:
    """Submit `jobs` while the writer is busy, so that all of them wait for the same turn."""
    running, release = threading.Event(), threading.Event()

    def busy(conn: sqlite3.Connection) -> int:
        running.set()
        release.wait(5)
        return 0

    blocker = asyncio.ensure_future(writer.run(busy))
    await asyncio.to_thread(running.wait, 5)
    waiting = [asyncio.ensure_future(writer.run(job, grouped=True)) for job in jobs]
    await asyncio.sleep(0.05)  # every job is now queued behind the busy one
    release.set()
    await blocker
    return await asyncio.gather(*waiting, return_exceptions=True)


def insert(x: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        if x == 7:
            raise ValueError("bad row")
        return conn.execute("INSERT INTO t (x) VALUES (?)", (x,)).rowcount

    return job


async def test_enqueues_waiting_behind_a_commit_share_one_transaction(tmp_path: Path) -> None:
    begins: list[str] = []
    writer = counting_writer(tmp_path / "w.sqlite3", begins)
    try:
        results = await run_grouped_behind_a_busy_writer(writer, [insert(x) for x in range(50) if x != 7])
    finally:
        await writer.close()
    assert results == [1] * 49
    assert len(begins) == 2  # the busy job's transaction, then one for all 49


async def test_a_failing_job_in_a_group_fails_alone(tmp_path: Path) -> None:
    begins: list[str] = []
    writer = counting_writer(tmp_path / "w.sqlite3", begins)
    try:
        results = await run_grouped_behind_a_busy_writer(writer, [insert(x) for x in range(20)])
        rows = await writer.run(lambda conn: int(conn.execute("SELECT count(*) FROM t").fetchone()[0]))
    finally:
        await writer.close()
    assert isinstance(results[7], ValueError)
    assert results[:7] + results[8:] == [1] * 19
    assert rows == 19
    # busy job, the group (rolled back), each of its 20 jobs alone, the count
    assert len(begins) == 1 + 1 + 20 + 1


def claim_until_empty(path: Path, owner: str, claimed: list[str], lock: threading.Lock) -> None:
    async def work() -> None:
        store = SQLiteStore(path)
        try:
            while batch := await claim_events(store, T0, 3, 60.0):
                for e in batch:
                    with lock:
                        claimed.append(e.message_id)
                    await store.complete(e.id, "delivered", lease=e.lease)
        finally:
            await store.close()

    asyncio.run(work())


async def test_workers_on_separate_connections_never_claim_the_same_event(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    store = SQLiteStore(path)
    await store.enqueue([event(f"m{i}", f"p{i % 40}") for i in range(300)])
    claimed: list[str] = []
    lock = threading.Lock()
    workers = [
        threading.Thread(target=claim_until_empty, args=(path, f"w{n}", claimed, lock)) for n in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.join)
    try:
        assert sorted(claimed) == sorted(f"m{i}" for i in range(300))
        assert (await store.counts())["delivered"] == 300
    finally:
        await store.close()


async def test_the_budget_holds_across_connections_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    stores: list[Store] = [SQLiteStore(path) for _ in range(4)]
    try:
        granted = await asyncio.to_thread(take_from_threads, stores, 8, 30, 100)
    finally:
        for store in stores:
            await store.close()
    assert granted == 100
