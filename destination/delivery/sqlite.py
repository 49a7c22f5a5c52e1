"""The durable store: one SQLite file in WAL mode, written by one thread with group commit.

The SQL is in queries.sql (one named block per statement), the schema's steps in
sqlite_migrations.sql (run at open: migrations.py); the state machine it implements is described in
store.py. Other processes may open the same file: transactions that write take the
write lock up front (BEGIN IMMEDIATE), so claims, leases and rate-window counts stay atomic
across them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from destination import jsonutil
from destination.delivery import migrations, sqlfile
from destination.delivery import rows as rowmap
from destination.delivery.holds import HoldKind, holds_of
from destination.delivery.sqlite_capacity import SQLiteCapacity
from destination.delivery.sqlite_views import SQLiteViews, json_ids
from destination.delivery.sqlite_writer import SQLiteWriter
from destination.delivery.store import (
    ASSOCIATION_RETENTION_SECONDS,
    DEDUPE_WINDOW_SECONDS,
    FINAL_OUTCOMES,
    GSID_RETENTION_SECONDS,
    MAX_RUN,
    NO_BOUND,
    RATE_WINDOW_RETENTION_SECONDS,
    STATE_RETENTION_SECONDS,
    Attempt,
    BudgetWindow,
    Calls,
    Claim,
    EventState,
    LastCompany,
    NewEvent,
    StateKind,
    affords,
    payable_costs,
    run_length,
)
from destination.delivery.store_base import (
    PRUNE_CHUNK,
    QueueMoves,
    new_lease,
    oldest_heads,
)
from destination.delivery.usage_sqlite import UsageSQLite
from destination.delivery.usage_store import USAGE_COUNTED_RETENTION_SECONDS

MIGRATIONS = "sqlite_migrations.sql"


def queries() -> dict[str, str]:
    """The named blocks of queries.sql."""
    return sqlfile.load("queries.sql")


def _json_or_none(value: Any) -> bytes | None:
    return None if value is None else jsonutil.dumps(value)


class SQLiteStore(SQLiteViews, SQLiteCapacity, UsageSQLite, QueueMoves):
    """`Store` on a SQLite file; see store.py for the semantics of each method."""

    def __init__(
        self,
        path: str | Path,
        *,
        dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._dedupe_window = dedupe_window_seconds
        self._clock = clock  # stamps finished_at; every decision takes its time as an argument
        self._holds = holds_of(self.path)
        self._q = queries()
        self._writer = SQLiteWriter(self._connect)
        self._scanner = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.executescript(self._q["configure_connection"])
            migrations.migrate_sqlite(conn, migrations.steps(MIGRATIONS))
        except BaseException:
            conn.close()
            raise
        return conn

    async def enqueue(self, events: Sequence[NewEvent]) -> list[bool]:
        events = list(events)

        def job(conn: sqlite3.Connection) -> list[bool]:
            stored = []
            for event in events:
                params = {
                    "destination_id": event.destination_id,
                    "message_id": event.message_id,
                    "ordering_key": event.ordering_key,
                    "kind": event.kind,
                    "payload": event.payload,
                    "received_at": event.received_at,
                    "cost": event.cost,
                    "dedupe_window": self._dedupe_window,
                }
                is_new = conn.execute(self._q["remember_message"], params).rowcount == 1
                if is_new:
                    conn.execute(self._q["insert_event"], params)
                stored.append(is_new)
            return stored

        return await self._writer.run(job, grouped=True) if events else []

    async def claim(
        self, now: float, limit: int, lease_seconds: float, calls: Calls = NO_BOUND
    ) -> list[Claim]:
        lease_until = now + lease_seconds
        ready = {"now": now, "limit": max(limit, 0)}  # SQLite reads a negative LIMIT as none
        payable = payable_costs(calls)

        def job(conn: sqlite3.Connection) -> list[Claim]:
            if payable is None:
                heads = conn.execute(self._q["ready_heads"], ready).fetchall()
            else:
                q = self._q["ready_heads_costing"]
                heads = oldest_heads(
                    [conn.execute(q, {**ready, "cost": c}).fetchall() for c in payable], limit
                )
            left = calls
            claims: list[Claim] = []
            for head_id, destination_id, ordering_key, kind, cost, _ in heads:
                if not affords(cost, left):  # spent its class: the next head may not need it
                    continue
                ids, kinds, costs = [head_id], [kind], [cost]
                params = {
                    "destination_id": destination_id,
                    "ordering_key": ordering_key,
                    "head_id": head_id,
                    "limit": MAX_RUN - 1,
                }
                # fetchall: no statement is left half-read (jobs hand back plain values only)
                for event_id, next_kind, next_cost, available_at in conn.execute(
                    self._q["run_after_head"], params
                ).fetchall():
                    if available_at > now:
                        break
                    ids.append(event_id)
                    kinds.append(next_kind)
                    costs.append(next_cost)
                taken, needed = run_length(kinds, costs, left)
                left -= needed
                lease = new_lease()
                events = [
                    rowmap.queued_event(
                        conn.execute(
                            self._q["lease_event"], {"id": i, "lease": lease, "lease_until": lease_until}
                        ).fetchone(),
                        lease,
                        rowmap.loads_or_none,
                    )
                    for i in ids[:taken]
                ]
                claims.append(Claim(lease, lease_until, tuple(events)))
            return claims

        return await self._writer.run(job)

    async def renew(self, lease: str, now: float, lease_seconds: float) -> int:
        params = {"lease": lease, "lease_until": now + lease_seconds}

        def job(conn: sqlite3.Connection) -> int:
            return int(conn.execute(self._q["renew_lease"], params).rowcount)

        return await self._writer.run(job, grouped=True)  # a batch's renewals share one commit

    def _record(self, conn: sqlite3.Connection, event_id: int, attempt: Attempt) -> bool:
        params = {
            "event_id": event_id,
            "at": attempt.at,
            "outcome": attempt.outcome,
            "status_code": attempt.status_code,
            "error": attempt.error,
            "response": _json_or_none(attempt.response),
            "request": _json_or_none(attempt.request),
            "call": attempt.call,
        }
        if conn.execute(self._q["append_attempt"], params).rowcount != 1:
            return False
        conn.execute(self._q["count_attempt"], params)
        return True

    # Moves after a delivery are grouped: a batch's settles, submitted together, share one commit.

    async def _put_back(
        self, event_id: int, at: float, progress: dict[str, Any] | None, lease: str, attempt: Attempt | None
    ) -> bool:
        params = {
            "id": event_id,
            "lease": lease,
            "available_at": at,
            "progress": _json_or_none(progress),
        }

        def job(conn: sqlite3.Connection) -> bool:
            if conn.execute(self._q["retry_later"], params).rowcount != 1:
                return False
            if attempt is not None:
                self._record(conn, event_id, attempt)
            return True

        return await self._writer.run(job, grouped=True)

    async def _finish(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        params = {
            "id": event_id,
            "lease": lease,
            "state": state,
            "reason": reason,
            "now": self._clock(),
        }

        def job(conn: sqlite3.Connection) -> bool:
            person = conn.execute(self._q["finish_event"], params).fetchall()
            if not person:
                return False
            if state in FINAL_OUTCOMES:
                conn.execute(self._q["drop_request_bodies"], {"event_id": event_id})
            if attempt is not None:
                self._record(conn, event_id, attempt)
            (destination_id, ordering_key) = person[0]
            conn.execute(
                self._q["promote_next_head"],
                {"destination_id": destination_id, "ordering_key": ordering_key},
            )
            return True

        return await self._writer.run(job, grouped=True)

    async def take_budget(
        self, tenant_key: str, windows: Sequence[BudgetWindow], calls: int = 1
    ) -> str | None:
        keys = [
            {"tenant_key": tenant_key, "window_name": name, "window_start": start, "calls": calls}
            for name, start, _ in windows
        ]

        def job(conn: sqlite3.Connection) -> str | None:
            for key, (name, _, limit) in zip(keys, windows, strict=True):
                row = conn.execute(self._q["window_calls"], key).fetchone()
                if (row[0] if row else 0) + calls > limit:
                    return name
            for key in keys:
                conn.execute(self._q["count_call"], key)
            return None

        return await self._writer.run(job, grouped=True)  # concurrent calls share one commit

    async def company_gsids(self, scope: str, names: Sequence[str]) -> dict[str, str]:
        def job(conn: sqlite3.Connection) -> dict[str, str]:
            found = {}
            for name in names:
                row = conn.execute(self._q["company_gsid"], {"scope": scope, "name": name}).fetchone()
                if row is not None:
                    found[name] = row[0]
            return found

        return await self._writer.run(job, writes=False)

    async def remember_gsids(self, scope: str, gsids: Mapping[str, str], now: float) -> None:
        rows = [{"scope": scope, "name": n, "gsid": g, "now": now} for n, g in gsids.items()]
        if rows:
            await self._writer.run(lambda conn: conn.executemany(self._q["remember_gsid"], rows).rowcount)

    async def forget_gsids(self, scope: str, names: Sequence[str]) -> None:
        rows = [{"scope": scope, "name": n} for n in names]
        if rows:
            await self._writer.run(lambda conn: conn.executemany(self._q["forget_gsid"], rows).rowcount)

    async def last_companies(self, destination_id: str, persons: Sequence[str]) -> dict[str, str]:
        def job(conn: sqlite3.Connection) -> dict[str, str]:
            found = {}
            for person in persons:
                params = {"destination_id": destination_id, "person": person}
                row = conn.execute(self._q["last_company"], params).fetchone()
                if row is not None:
                    found[person] = row[0]
            return found

        return await self._writer.run(job, writes=False)

    async def remember_last_companies(
        self, destination_id: str, links: Mapping[str, LastCompany], now: float
    ) -> None:
        rows = [
            {"destination_id": destination_id, "person": p, "gsid": gsid, "event_id": event_id, "now": now}
            for p, (gsid, event_id) in links.items()
        ]
        if rows:
            await self._writer.run(
                lambda conn: conn.executemany(self._q["remember_last_company"], rows).rowcount
            )

    async def delivered_states(
        self, scope: str, kind: StateKind, keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]:
        def job(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            found = {}
            for key in keys:
                params = {"scope": scope, "kind": kind, "key": key, "since": since}
                row = conn.execute(self._q["delivered_state"], params).fetchone()
                if row is not None:
                    found[key] = jsonutil.loads(row[0])
            return found

        return await self._writer.run(job, writes=False)

    async def remember_states(
        self, scope: str, kind: StateKind, states: Mapping[str, Mapping[str, Any]], now: float
    ) -> None:
        rows = [
            {"scope": scope, "kind": kind, "key": k, "state": jsonutil.dumps(dict(v)), "now": now}
            for k, v in states.items()
        ]
        if rows:
            await self._writer.run(lambda conn: conn.executemany(self._q["remember_state"], rows).rowcount)

    async def forget_states(self, scope: str, kind: StateKind, keys: Sequence[str]) -> None:
        rows = [{"scope": scope, "kind": kind, "key": k} for k in keys]
        if rows:
            await self._writer.run(lambda conn: conn.executemany(self._q["forget_state"], rows).rowcount)

    def hold(self, scope: str, kind: HoldKind, keys: Sequence[str]) -> AbstractAsyncContextManager[None]:
        return self._holds.hold(scope, kind, keys)

    async def prune(self, now: float, *, state_ttl_seconds: float = STATE_RETENTION_SECONDS) -> int:
        before = now - self._dedupe_window
        state_before = now - min(state_ttl_seconds, STATE_RETENTION_SECONDS)
        deleted = 0
        while (n := await self._writer.run(lambda conn: self._prune_events(conn, before))) > 0:
            deleted += n
        params = {"before": before, "limit": PRUNE_CHUNK}
        while await self._writer.run(
            lambda conn: conn.execute(self._q["prune_seen_messages"], params).rowcount
        ):
            pass
        window_params = {"before": now - RATE_WINDOW_RETENTION_SECONDS}
        await self._writer.run(
            lambda conn: conn.execute(self._q["prune_rate_windows"], window_params).rowcount
        )

        def prune_memory(conn: sqlite3.Connection) -> None:
            conn.execute(self._q["prune_delivered_state"], {"before": state_before})
            conn.execute(self._q["prune_company_gsids"], {"before": now - GSID_RETENTION_SECONDS})
            conn.execute(self._q["prune_last_companies"], {"before": now - ASSOCIATION_RETENTION_SECONDS})

        await self._writer.run(prune_memory)
        await self._prune_usage(now, now - USAGE_COUNTED_RETENTION_SECONDS)
        await self._writer.give_space_back()
        return deleted

    def _prune_events(self, conn: sqlite3.Connection, before: float) -> int:
        params = {"before": before, "limit": PRUNE_CHUNK}
        found = [row[0] for row in conn.execute(self._q["prunable_events"], params)]
        if not found:
            return 0
        ids = json_ids(found)
        conn.execute(self._q["delete_attempts_of"], {"ids": ids})
        return conn.execute(self._q["delete_events"], {"ids": ids}).rowcount

    async def close(self) -> None:
        if self._scanner is not None:
            await self._scanner.close()
        await self._writer.close()
