"""The PostgreSQL store: several replicas share one database (DESIGN §7).

The SQL is in postgres.sql, the schema's steps in postgres_migrations.sql (run when the store is
first used, under an advisory lock, so replicas starting together migrate once). Claims use
`FOR UPDATE SKIP LOCKED`; a person's queue changes only under the person's advisory lock; rate
windows are counted by one upsert, so the budget holds across replicas.

Connections come from a psycopg_pool pool (`pool_size`). When the server cannot be reached, every
method raises StoreUnavailableError within a few seconds, naming the cause the last connection
attempt met (ingest answers 503, never 200; /ready shows it); the pool reconnects by itself once
the server is back, so workers resume without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from destination import jsonutil
from destination.delivery import migrations, sqlfile
from destination.delivery import rows as rowmap
from destination.delivery.grouping import Grouped
from destination.delivery.holds import HoldKind, Holds, hold_keys, lock_text
from destination.delivery.postgres_reach import CONNECT_TIMEOUT_SECONDS, Reach, cause
from destination.delivery.store import (
    DEDUPE_WINDOW_SECONDS,
    EVENT_STATES,
    FINAL_OUTCOMES,
    GSID_RETENTION_SECONDS,
    MAX_RUN,
    RATE_WINDOW_RETENTION_SECONDS,
    STATE_RETENTION_SECONDS,
    Attempt,
    AttemptRecord,
    BudgetWindow,
    Claim,
    DeadLetter,
    EventState,
    EventSummary,
    FinishMoves,
    NewEvent,
    StateKind,
    StoreClosedError,
    StoredEvent,
    StoreError,
    StoreUnavailableError,
    check_attempt,
    new_lease,
    run_length,
    user_needle,
)
from destination.events import ascii_lower
from destination.settings import default

MIGRATIONS = "postgres_migrations.sql"
DEFAULT_POOL_SIZE: int = default("store_pool_size")
WAIT_SECONDS = 5.0  # longest wait for a pooled connection before answering "unavailable"
DOWN_WAIT_SECONDS = 2.0  # the same while the last attempt to connect failed (a known outage)
PRUNE_CHUNK = 1000
RECENT_ATTEMPTS_SCAN = 50_000  # recent_attempts looks no further back than this many attempts

Conn = psycopg.AsyncConnection[TupleRow]


def queries() -> dict[str, str]:
    return sqlfile.load("postgres.sql")


async def _configure(conn: Conn) -> None:
    # orjson both ways for jsonb (progress, responses, requests).
    set_json_dumps(jsonutil.dumps, conn)
    set_json_loads(jsonutil.loads, conn)
    await conn.set_autocommit(False)


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _lists(people: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    return {"destinations": [d for d, _ in people], "people": [p for _, p in people]}


class PostgresStore(FinishMoves):
    """`Store` on a PostgreSQL database; see store.py for the semantics of each method."""

    def __init__(
        self,
        url: str,
        *,
        dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        pool_size: int = DEFAULT_POOL_SIZE,
        hold_pool_size: int | None = None,
    ) -> None:
        """`hold_pool_size`: connections for holds (default `pool_size`); the service gives as many
        as it can have holds at once (app.py), since a hold that waits for one fails its batch."""
        if pool_size < 1 or (hold_pool_size is not None and hold_pool_size < 1):
            raise ValueError("the pool needs at least one connection")
        self._dedupe_window = dedupe_window_seconds
        self._clock = clock
        self._q = queries()
        self._reach = Reach()
        self._pool = AsyncConnectionPool(
            url,
            connection_class=self._reach.connection_class(),
            min_size=min(2, pool_size),
            max_size=pool_size,
            open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
            configure=_configure,
            # A connection that died with the server is found out (and replaced) before use.
            check=AsyncConnectionPool.check_connection,
            timeout=WAIT_SECONDS,
            reconnect_timeout=3600.0,
            name="gsd-store",
        )
        # Holds (companies, people) keep a connection for the length of a few Gainsight calls: a
        # pool of their own, so they never leave ingest or the rate windows waiting for a connection.
        self._finishes = Grouped(self._finish_group)
        self._hold_pool = AsyncConnectionPool(
            url,
            connection_class=self._reach.connection_class(),
            min_size=0,
            max_size=hold_pool_size or pool_size,
            open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "autocommit": True},
            check=AsyncConnectionPool.check_connection,
            timeout=WAIT_SECONDS,
            name="gsd-store-holds",
        )
        self._ready = False
        self._closed = False
        self._opening = asyncio.Lock()
        self._holds = Holds()

    # ---- connections ----

    async def _open(self) -> None:
        """Open the pool and migrate the schema, once; retried by the next call if it failed."""
        async with self._opening:
            if self._ready:
                return
            if self._pool.closed:
                await self._pool.open(wait=False)
                await self._hold_pool.open(wait=False)
            async with self._pool.connection(self._wait_seconds()) as conn:
                await self._migrate(conn)
            self._ready = True

    async def _migrate(self, conn: Conn) -> None:
        steps = migrations.steps(MIGRATIONS)
        async with conn.transaction():
            await conn.execute(self._q["migration_lock"])
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = await (await conn.execute(self._q["schema_version"])).fetchone()
            if row is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0 if row is None else int(row[0])
            for step in migrations.pending(steps, version):
                await conn.execute(step.sql.encode())  # no parameters: several statements at once
                await conn.execute("UPDATE schema_version SET version = %s", (step.version,))

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """A connection in a transaction, committed when the block ends. Errors that mean the server
        is out of reach become StoreUnavailableError."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        try:
            if not self._ready:
                try:
                    await self._open()
                except StoreError as exc:  # e.g. a schema newer than this build: say so, never a 500
                    if isinstance(exc, StoreUnavailableError):
                        raise
                    raise StoreUnavailableError(str(exc)) from exc
            async with self._pool.connection(self._wait_seconds()) as conn, conn.transaction():
                yield conn
        except PoolClosed:
            raise StoreClosedError("the store is closed") from None
        except PoolTimeout:
            raise self._unreachable() from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailableError("the PostgreSQL store failed", cause(exc)) from exc

    def _wait_seconds(self) -> float:
        return WAIT_SECONDS if self._reach.failure is None else DOWN_WAIT_SECONDS

    def _unreachable(self) -> StoreUnavailableError:
        return StoreUnavailableError("the PostgreSQL store cannot be reached", self._reach.failure)

    async def _lock_people(self, conn: Conn, people: Sequence[tuple[str, str]]) -> None:
        if people:
            await conn.execute(self._q["lock_people"], _lists(people))

    # ---- queue ----

    async def enqueue(self, events: Sequence[NewEvent]) -> list[bool]:
        if not events:
            return []
        first: dict[tuple[str, str], int] = {}  # a messageId repeated within the batch: first wins
        for i, event in enumerate(events):
            first.setdefault((event.destination_id, event.message_id), i)
        batch = [events[i] for i in sorted(first.values())]
        people = sorted({(e.destination_id, e.ordering_key) for e in batch})
        params = {
            "destinations": [e.destination_id for e in batch],
            "message_ids": [e.message_id for e in batch],
            "people": [e.ordering_key for e in batch],
            "kinds": [e.kind for e in batch],
            "payloads": [e.payload for e in batch],
            "received": [e.received_at for e in batch],
            "dedupe_window": self._dedupe_window,
        }
        async with self._tx() as conn:
            await self._lock_people(conn, people)
            cursor = await conn.execute(self._q["enqueue"], params)
            stored_ids = {row[0] for row in await cursor.fetchall()}
            if stored_ids:
                await conn.execute(self._q["elect_heads"], _lists(people))
        stored = {(e.destination_id, e.message_id) for e in batch if e.message_id in stored_ids}
        return [
            first[(e.destination_id, e.message_id)] == i and (e.destination_id, e.message_id) in stored
            for i, e in enumerate(events)
        ]

    async def claim(
        self, now: float, limit: int, lease_seconds: float, *, calls: int | None = None
    ) -> list[Claim]:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if limit <= 0:
            return []
        lease_until = now + lease_seconds
        async with self._tx() as conn:
            heads = await (
                await conn.execute(self._q["ready_heads"], {"now": now, "limit": limit})
            ).fetchall()
            if not heads:
                return []
            due = {head_id: ([head_id], [kind]) for head_id, _, _, kind in heads}
            params = {
                "heads": [i for i, _, _, _ in heads],
                "destinations": [d for _, d, _, _ in heads],
                "people": [p for _, _, p, _ in heads],
                "limit": MAX_RUN - 1,
            }
            ended: set[int] = set()
            for head_id, event_id, kind, available_at in await (
                await conn.execute(self._q["runs_after_heads"], params)
            ).fetchall():
                if head_id in ended or available_at > now:
                    ended.add(head_id)
                else:
                    due[head_id][0].append(event_id)
                    due[head_id][1].append(kind)
            runs = self._within(heads, due, calls if calls is not None else limit * MAX_RUN)
            leases = {head_id: new_lease() for head_id in runs}
            ids = [event_id for run in runs.values() for event_id in run]
            params = {
                "ids": ids,
                "leases": [leases[head_id] for head_id, run in runs.items() for _ in run],
                "lease_until": lease_until,
                "now": now,
            }
            rows = await (await conn.execute(self._q["lease_events"], params)).fetchall()
        leased = {row[0]: row for row in rows}
        claims = []
        for head_id in runs:  # oldest ready head first
            lease = leases[head_id]
            events = tuple(
                rowmap.queued_event(leased[i], lease, _as_is) for i in runs[head_id] if i in leased
            )
            if events:
                claims.append(Claim(lease, lease_until, events))
        return claims

    @staticmethod
    def _within(
        heads: Sequence[tuple[Any, ...]], due: dict[int, tuple[list[int], list[str]]], calls: int
    ) -> dict[int, list[int]]:
        """Each head's run, oldest head first, while the calls they need fit in `calls`."""
        runs: dict[int, list[int]] = {}
        for head_id, *_ in heads:
            if runs and calls < 1:
                break
            ids, kinds = due[head_id]
            taken, needed = run_length(kinds, calls)
            calls -= needed
            runs[head_id] = ids[:taken]
        return runs

    async def renew(self, lease: str, now: float, lease_seconds: float) -> int:
        params = {"lease": lease, "lease_until": now + lease_seconds}
        async with self._tx() as conn:
            await conn.execute(self._q["lazy_commit"])
            return (await conn.execute(self._q["renew_lease"], params)).rowcount

    async def _record(self, conn: Conn, event_id: int, attempt: Attempt) -> bool:
        params = {
            "event_id": event_id,
            "at": attempt.at,
            "outcome": attempt.outcome,
            "status_code": attempt.status_code,
            "error": attempt.error,
            "response": _jsonb(attempt.response),
            "request": _jsonb(attempt.request),
            "call": attempt.call,
        }
        return (await conn.execute(self._q["append_attempt"], params)).rowcount == 1

    async def retry_later(
        self,
        event_id: int,
        available_at: float,
        progress: Mapping[str, Any] | None,
        *,
        lease: str,
        attempt: Attempt | None = None,
    ) -> bool:
        if attempt is not None:
            check_attempt(attempt)
        if not _storable_id(event_id):
            return False
        params = {
            "id": event_id,
            "lease": lease,
            "available_at": available_at,
            "progress": None if progress is None else Jsonb(dict(progress)),
        }
        async with self._tx() as conn:
            await conn.execute(self._q["lazy_commit"])
            if (await conn.execute(self._q["retry_later"], params)).rowcount != 1:
                return False
            if attempt is not None:
                await self._record(conn, event_id, attempt)
        return True

    async def _finish(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        if attempt is not None:
            check_attempt(attempt)
        if not _storable_id(event_id):
            return False
        move = {"id": event_id, "lease": lease, "state": state, "reason": reason, "now": self._clock()}
        return await self._finishes((move, attempt))  # with the finishes submitted alongside

    async def _finish_group(self, moves: list[tuple[dict[str, Any], Attempt | None]]) -> list[bool]:
        """Finish the leased events in one transaction: their people locked once, then each
        event's move and attempt, then the people's next heads."""
        async with self._tx() as conn:
            found = [await (await conn.execute(self._q["person_of"], m)).fetchone() for m, _ in moves]
            people = sorted({(row[0], row[1]) for row in found if row is not None})
            await self._lock_people(conn, people)
            done = []
            for (move, attempt), row in zip(moves, found, strict=True):
                finished = row is not None and (
                    (await conn.execute(self._q["finish_event"], move)).rowcount == 1
                )
                if finished and move["state"] in FINAL_OUTCOMES:
                    await conn.execute(self._q["drop_request_bodies"], {"event_id": move["id"]})
                if finished and attempt is not None:
                    await self._record(conn, move["id"], attempt)
                done.append(finished)
            await conn.execute(self._q["elect_heads"], _lists(people))
        return done

    # ---- inspection and dead letters ----

    async def get_event(self, event_id: int) -> StoredEvent | None:
        if not _storable_id(event_id):
            return None
        async with self._tx() as conn:
            row = await (await conn.execute(self._q["get_event"], {"id": event_id})).fetchone()
            if row is None:
                return None
            history = await (await conn.execute(self._q["event_history"], {"event_id": event_id})).fetchall()
        return rowmap.stored_event(row, history, _as_is)

    async def list_dead_letters(
        self, destination_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        if limit <= 0:
            return []
        params = {"destination_id": destination_id, "limit": _bigint(limit), "offset": _bigint(offset)}
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["list_dead_letters"], params)).fetchall()
        return [DeadLetter(*row) for row in rows]

    async def get_dead_letter(self, event_id: int) -> StoredEvent | None:
        event = await self.get_event(event_id)
        return event if event is not None and event.state == "dead" else None

    def _selection(self, ids: Sequence[int] | None, destination_id: str | None) -> dict[str, Any]:
        return {
            "ids": None if ids is None else [int(i) for i in ids if _storable_id(int(i))],
            "destination_id": destination_id,
        }

    async def replay_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        params = self._selection(ids, destination_id)
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["dead_letter_people"], params)).fetchall()
            people = sorted((d, p) for d, p in rows)
            if not people:
                return 0
            await self._lock_people(conn, people)
            replayed = await (await conn.execute(self._q["requeue_dead_letters"], params)).fetchall()
            await conn.execute(self._q["reset_heads"], _lists(people))
            await conn.execute(self._q["elect_heads"], _lists(people))
        return len(replayed)

    async def purge_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        async with self._tx() as conn:
            row = await (
                await conn.execute(self._q["purge_dead_letters"], self._selection(ids, destination_id))
            ).fetchone()
        return int(row[0]) if row else 0

    async def counts(self) -> dict[EventState, int]:
        async with self._tx() as conn:
            found = dict(await (await conn.execute(self._q["state_counts"])).fetchall())
        return {state: int(found.get(state) or 0) for state in EVENT_STATES}

    # ---- read-only views (admin routes, CLI, /status) ----

    async def find_events(self, message_id: str, destination_id: str | None = None) -> list[StoredEvent]:
        params = {"message_id": message_id, "destination_id": destination_id}
        async with self._tx() as conn:
            ids = [
                row[0] for row in await (await conn.execute(self._q["events_by_message"], params)).fetchall()
            ]
            found = []
            for event_id in ids:
                row = await (await conn.execute(self._q["get_event"], {"id": event_id})).fetchone()
                history = await (
                    await conn.execute(self._q["event_history"], {"event_id": event_id})
                ).fetchall()
                if row is not None:
                    found.append(rowmap.stored_event(row, history, _as_is))
        return found

    async def list_events(
        self,
        destination_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        user: str | None = None,
    ) -> list[EventSummary]:
        if limit <= 0:
            return []
        params = {
            "destination_id": destination_id,
            "state": state,
            "limit": _bigint(limit),
            "offset": _bigint(offset),
            "user": user,
            "needle": None if user is None else user_needle(user),
            "email": None if user is None else ascii_lower(user),
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["list_events"], params)).fetchall()
        return [EventSummary(*row) for row in rows]

    async def latest_finished(
        self, destination_id: str, state: str, since: float, limit: int
    ) -> list[EventSummary]:
        params = {"destination_id": destination_id, "state": state, "since": since, "limit": _bigint(limit)}
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["latest_finished"], params)).fetchall()
        return [EventSummary(*row) for row in rows]

    async def person_head(self, destination_id: str, ordering_key: str) -> EventSummary | None:
        params = {"destination_id": destination_id, "ordering_key": ordering_key}
        async with self._tx() as conn:
            row = await (await conn.execute(self._q["person_head"], params)).fetchone()
        return None if row is None else EventSummary(*row)

    async def retry_now(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None, *, now: float
    ) -> int:
        params = {**self._selection(ids, destination_id), "now": now}
        async with self._tx() as conn:
            return (await conn.execute(self._q["retry_now"], params)).rowcount

    async def counts_by_destination(self) -> dict[str, dict[str, int]]:
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["counts_by_destination"])).fetchall()
        return rowmap.per_destination(rows)

    async def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["finished_counts"], {"since": since})).fetchall()
        return rowmap.per_destination(rows)

    async def recent_attempts(
        self, destination_id: str | None = None, limit: int = 20, *, failed_only: bool = False
    ) -> list[AttemptRecord]:
        if limit <= 0:
            return []
        params = {
            "destination_id": destination_id,
            "limit": _bigint(limit),
            "failed": failed_only,
            "scan": RECENT_ATTEMPTS_SCAN,
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["recent_attempts"], params)).fetchall()
        return [AttemptRecord(r[0], r[1], r[2], r[3], rowmap.attempt(r[4:11], _as_is), r[11]) for r in rows]

    async def budget_used(self, tenant_key: str, windows: Sequence[tuple[str, float]]) -> dict[str, int]:
        params = {
            "tenant_key": tenant_key,
            "names": [name for name, _ in windows],
            "starts": [start for _, start in windows],
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["budget_used"], params)).fetchall()
        return {name: int(calls) for name, calls in rows}

    # ---- rate windows ----

    async def take_budget(
        self, tenant_key: str, windows: Sequence[BudgetWindow], calls: int = 1
    ) -> str | None:
        if calls < 1:
            raise ValueError("take_budget counts at least one call")
        for name, _, limit in windows:
            if calls > limit:
                return name
        params = {
            "calls": calls,
            "tenant_key": tenant_key,
            "names": [name for name, _, _ in windows],
            "starts": [start for _, start, _ in windows],
            "caps": [limit for _, _, limit in windows],
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["take_budget"], params)).fetchall()
            # One name may come twice (a call near an edge is counted in both windows): by start too.
            counted = {(name, start) for name, start in rows}
            full = next((name for name, start, _ in windows if (name, start) not in counted), None)
            if full is not None:
                raise psycopg.Rollback()  # counts nothing when any window is full
        return full

    # ---- what Gainsight holds (DESIGN §6) ----

    async def company_gsids(self, scope: str, names: Sequence[str]) -> dict[str, str]:
        if not names:
            return {}
        async with self._tx() as conn:
            rows = await (
                await conn.execute(self._q["company_gsids"], {"scope": scope, "names": list(names)})
            ).fetchall()
        return {name: gsid for name, gsid in rows}

    async def remember_gsids(self, scope: str, gsids: Mapping[str, str], now: float) -> None:
        if gsids:
            params = {"scope": scope, "names": list(gsids), "gsids": list(gsids.values()), "now": now}
            async with self._tx() as conn:
                await conn.execute(self._q["remember_gsids"], params)

    async def forget_gsids(self, scope: str, names: Sequence[str]) -> None:
        if names:
            async with self._tx() as conn:
                await conn.execute(self._q["forget_gsids"], {"scope": scope, "names": list(names)})

    async def delivered_states(
        self, scope: str, kind: StateKind, keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        params = {"scope": scope, "kind": kind, "keys": list(keys), "since": since}
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["delivered_states"], params)).fetchall()
        return {key: state for key, state in rows}

    async def remember_states(
        self, scope: str, kind: StateKind, states: Mapping[str, Mapping[str, Any]], now: float
    ) -> None:
        if states:
            params = {
                "scope": scope,
                "kind": kind,
                "keys": list(states),
                "states": [Jsonb(dict(state)) for state in states.values()],
                "now": now,
            }
            async with self._tx() as conn:
                await conn.execute(self._q["remember_states"], params)

    async def forget_states(self, scope: str, kind: StateKind, keys: Sequence[str]) -> None:
        if keys:
            async with self._tx() as conn:
                params = {"scope": scope, "kind": kind, "keys": list(keys)}
                await conn.execute(self._q["forget_states"], params)

    @asynccontextmanager
    async def hold(self, scope: str, kind: HoldKind, keys: Sequence[str]) -> AsyncIterator[None]:
        """Session advisory locks on a connection of the holder's own: every replica waits for
        them, and they go with the connection if the holder dies."""
        held = hold_keys(scope, kind, keys)
        if not held:
            yield
            return
        async with self._holds.hold(
            scope, kind, keys
        ):  # one waiter per key per process, not a connection each
            if self._closed:
                raise StoreClosedError("the store is closed")
            try:
                if not self._ready:
                    await self._open()
                conn = await self._hold_pool.getconn(self._wait_seconds())
            except PoolTimeout:
                if self._reach.failure is not None:
                    raise self._unreachable() from None
                raise StoreUnavailableError(
                    "no PostgreSQL connection free for a hold (every hold connection is in use)"
                ) from None
            try:
                for key in held:
                    await conn.execute(self._q["hold"], {"key": lock_text(key)})
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await self._hold_pool.putconn(conn)
                raise StoreUnavailableError("the PostgreSQL store failed", cause(exc)) from exc
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):  # broken: the server dropped its locks
                    await conn.execute(self._q["release_holds"])
                await self._hold_pool.putconn(conn)

    # ---- housekeeping ----

    async def prune(self, now: float, *, state_ttl_seconds: float = STATE_RETENTION_SECONDS) -> int:
        before = now - self._dedupe_window
        state_before = now - min(state_ttl_seconds, STATE_RETENTION_SECONDS)
        deleted = 0
        while True:
            async with self._tx() as conn:
                row = await (
                    await conn.execute(self._q["prune_events"], {"before": before, "limit": PRUNE_CHUNK})
                ).fetchone()
            removed = int(row[0]) if row else 0
            deleted += removed
            if removed == 0:
                break
        while True:
            async with self._tx() as conn:
                params = {"before": before, "limit": PRUNE_CHUNK}
                removed = (await conn.execute(self._q["prune_seen_messages"], params)).rowcount
            if removed <= 0:
                break
        async with self._tx() as conn:
            await conn.execute(self._q["prune_rate_windows"], {"before": now - RATE_WINDOW_RETENTION_SECONDS})
            await conn.execute(self._q["prune_delivered_state"], {"before": state_before})
            await conn.execute(self._q["prune_company_gsids"], {"before": now - GSID_RETENTION_SECONDS})
            await conn.execute(self._q["fold_state_counts"])
        return deleted

    async def close(self) -> None:
        self._closed = True
        for pool in (self._hold_pool, self._pool):
            if not pool.closed:
                await pool.close()


def _bigint(n: int) -> int:
    """A page bound clamped to what PostgreSQL's bigint holds (a caller's 2**64 is "no limit")."""
    return min(max(n, 0), 2**63 - 1)


def _storable_id(event_id: int) -> bool:
    """Ids are bigints: anything else names no event (never a 500)."""
    return 0 <= event_id < 2**63


def _as_is(value: Any) -> Any:
    """JSON columns arrive parsed (jsonb)."""
    return value
