"""One SQLite connection owned by one thread, with group commit.

Every store operation becomes a job: a function of the connection that the thread runs inside a
transaction, handing its result back to the awaiting coroutine. Jobs submitted with
`grouped=True` (ingest) that are waiting when the thread gets to them share one transaction and so
one commit (one fsync): while a commit is in progress the next requests pile up and are written
together, which keeps single-event ingest latency low and batch ingest fast without any timer.
A failed group is rolled back and its jobs rerun one by one, so one bad job fails alone.

A full disk (SQLITE_FULL) is survived: the failed transaction is rolled back, the thread lives on,
and the write-ahead log is checkpointed and truncated at once, so that the space it holds goes
back to the file system (freed space is not refilled by the log later) and the next commit can
succeed as soon as there is room again.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from destination.delivery.store import (
    StoreClosedError,
    StoreFullError,
    StoreUnavailableError,
)

T = TypeVar("T")
Connect = Callable[[], sqlite3.Connection]
VACUUM_CHUNK = 2048  # free pages given back per step (8 MiB)


@dataclass(slots=True)
class _Job:
    run: Callable[[sqlite3.Connection], Any]
    future: Future[Any]
    grouped: bool
    writes: bool
    transaction: bool = True


class SQLiteWriter:
    """A dedicated thread that runs jobs against the connection that `connect` opens in it."""

    def __init__(self, connect: Connect, name: str = "gsd-sqlite-writer") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders "closed?" checks against the stop sentinel
        self._closed = False
        self._started: Future[None] = Future()
        self._stopped: Future[None] = Future()
        self._thread = threading.Thread(target=self._serve, args=(connect,), name=name, daemon=True)
        self._thread.start()
        self._started.result()  # re-raises a failure to open or set up the database

    async def run(
        self,
        job: Callable[[sqlite3.Connection], T],
        *,
        grouped: bool = False,
        writes: bool = True,
        transaction: bool = True,
    ) -> T:
        """Run `job` in a transaction (BEGIN IMMEDIATE when it writes) and return its result
        once committed. `transaction=False`: alone and outside any transaction, for what SQLite
        refuses inside one (a WAL checkpoint, an incremental vacuum that runs to its end)."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            self._jobs.put(_Job(job, future, grouped and transaction, writes, transaction))
        try:
            return await asyncio.wrap_future(future)
        except sqlite3.OperationalError as exc:
            mapped = _unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc

    async def give_space_back(self) -> None:
        """Hand the pages that deletes freed back to the file system (a file in incremental
        auto-vacuum mode): a chunk at a time, each its own short write so that other jobs never
        wait long, then a checkpoint that truncates the log, so the file shrinks now rather than
        at some later checkpoint."""

        def vacuum_step(conn: sqlite3.Connection) -> int:
            # Run by sqlite3_exec (executescript): the pragma frees a page per step, to its end.
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_CHUNK});")
            return int(conn.execute("PRAGMA freelist_count").fetchone()[0])

        free = -1
        while free != 0:
            left = await self.run(vacuum_step, transaction=False)
            if left == free:  # a file without incremental auto-vacuum frees nothing
                break
            free = left
        await self.run(give_back_log, transaction=False)

    async def close(self) -> None:
        """Run the jobs already submitted, then close the connection."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        await asyncio.wrap_future(self._stopped)

    def _serve(self, connect: Connect) -> None:
        try:
            conn = connect()
        except BaseException as exc:
            self._started.set_exception(exc)
            self._stopped.set_result(None)
            return
        self._started.set_result(None)
        try:
            stop = False
            while not stop:
                jobs = self._take_waiting_jobs()
                stop = None in jobs
                live = [j for j in jobs if j is not None and j.future.set_running_or_notify_cancel()]
                try:
                    self._run_batch(conn, live)
                except BaseException as exc:  # the connection is unusable: fail, never hang
                    for job in live:
                        if not job.future.done():
                            job.future.set_exception(exc)
                    raise
        finally:
            self._refuse_pending()
            conn.close()
            self._stopped.set_result(None)

    def _run_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        grouped = [job for job in jobs if job.grouped]
        if grouped:
            self._run_group(conn, grouped)
        for job in jobs:
            if not job.transaction:
                self._run_bare(conn, job)
            elif not job.grouped:
                self._run_group(conn, [job])

    def _run_bare(self, conn: sqlite3.Connection, job: _Job) -> None:
        try:
            result = job.run(conn)
        except Exception as exc:
            job.future.set_exception(exc)
            return
        job.future.set_result(result)

    def _refuse_pending(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(StoreClosedError("the store is closed"))

    def _take_waiting_jobs(self) -> list[_Job | None]:
        jobs = [self._jobs.get()]
        while True:
            try:
                jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                return jobs

    def _run_group(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        writes = any(job.writes for job in jobs)
        try:
            conn.execute("BEGIN IMMEDIATE" if writes else "BEGIN")
            results = [job.run(conn) for job in jobs]
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                # e.g. disk full: SQLite has rolled back already; the thread must live on.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if _is_full(exc):
                give_back_log(conn)
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
            else:
                for job in jobs:
                    self._run_group(conn, [job])
            return
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)


# Primary result codes that mean "cannot commit now" rather than a bug in a query.
_TRANSIENT = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)


def _primary_code(exc: BaseException) -> int:
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def _is_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error) and _primary_code(exc) == sqlite3.SQLITE_FULL


def give_back_log(conn: sqlite3.Connection) -> None:
    """Checkpoint the write-ahead log into the database and truncate it to nothing (outside a
    transaction). Best effort and without waiting: on a full disk, or while another process reads
    an older snapshot, it may not finish, and a later call tries again."""
    (timeout,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def _unavailable(exc: sqlite3.OperationalError) -> StoreUnavailableError | None:
    code = _primary_code(exc)
    if code == sqlite3.SQLITE_FULL:
        return StoreFullError(f"the store cannot commit: {exc} (disk full)")
    if code in _TRANSIENT:
        return StoreUnavailableError(f"the store cannot commit: {exc}")
    return None
