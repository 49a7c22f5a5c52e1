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

import time
from collections.abc import Callable, Sequence
from typing import Any

from destination.delivery import rows as rowmap
from destination.delivery.grouping import Grouped
from destination.delivery.postgres_capacity import PostgresCapacity
from destination.delivery.postgres_connections import (
    DEFAULT_POOL_SIZE,
    Conn,
    jsonb_or_none,
    people_lists,
)
from destination.delivery.postgres_memory import PostgresMemory
from destination.delivery.postgres_views import PostgresViews
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
    Calls,
    Claim,
    EventState,
    NewEvent,
    affords,
    payable_costs,
    run_length,
)
from destination.delivery.store_base import (
    PRUNE_CHUNK,
    QueueMoves,
    new_lease,
    oldest_heads,
    storable_id,
)
from destination.delivery.usage_postgres import UsagePostgres
from destination.delivery.usage_store import USAGE_COUNTED_RETENTION_SECONDS


class PostgresStore(PostgresViews, PostgresMemory, PostgresCapacity, UsagePostgres, QueueMoves):
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
        super().__init__(url, pool_size=pool_size, hold_pool_size=hold_pool_size)
        self._dedupe_window = dedupe_window_seconds
        self._clock = clock
        self._finishes = Grouped(self._finish_group)

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
            "costs": [e.cost for e in batch],
            "dedupe_window": self._dedupe_window,
        }
        async with self._tx() as conn:
            await self._lock_people(conn, people)
            cursor = await conn.execute(self._q["enqueue"], params)
            stored_ids = {row[0] for row in await cursor.fetchall()}
            if stored_ids:
                await conn.execute(self._q["elect_heads"], people_lists(people))
        stored = {(e.destination_id, e.message_id) for e in batch if e.message_id in stored_ids}
        return [
            first[(e.destination_id, e.message_id)] == i and (e.destination_id, e.message_id) in stored
            for i, e in enumerate(events)
        ]

    async def claim(
        self, now: float, limit: int, lease_seconds: float, calls: Calls = NO_BOUND
    ) -> list[Claim]:
        lease_until = now + lease_seconds
        ready = {"now": now, "limit": max(limit, 0)}
        payable = payable_costs(calls)
        async with self._tx() as conn:
            if payable is None:
                heads = await (await conn.execute(self._q["ready_heads"], ready)).fetchall()
            else:
                found = []
                for cost in payable:
                    cursor = await conn.execute(self._q["ready_heads_costing"], {**ready, "cost": cost})
                    found.append(await cursor.fetchall())
                heads = oldest_heads(found, limit)
            if not heads:
                return []
            due = {head_id: ([head_id], [kind], [cost]) for head_id, _, _, kind, cost, _ in heads}
            params = {
                "heads": [h[0] for h in heads],
                "destinations": [h[1] for h in heads],
                "people": [h[2] for h in heads],
                "limit": MAX_RUN - 1,
            }
            ended: set[int] = set()
            for head_id, event_id, kind, cost, available_at in await (
                await conn.execute(self._q["runs_after_heads"], params)
            ).fetchall():
                if head_id in ended or available_at > now:
                    ended.add(head_id)
                else:
                    due[head_id][0].append(event_id)
                    due[head_id][1].append(kind)
                    due[head_id][2].append(cost)
            runs = self._within(heads, due, calls)
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
                rowmap.queued_event(leased[i], lease, rowmap.as_is) for i in runs[head_id] if i in leased
            )
            if events:
                claims.append(Claim(lease, lease_until, events))
        return claims

    @staticmethod
    def _within(
        heads: Sequence[tuple[Any, ...]], due: dict[int, tuple[list[int], list[str], list[str]]], calls: Calls
    ) -> dict[int, list[int]]:
        """Each head's run, oldest head first, while the calls they need fit in `calls`; a head
        whose class is spent is skipped (the next may not need it)."""
        runs: dict[int, list[int]] = {}
        for head_id, *_ in heads:
            ids, kinds, costs = due[head_id]
            if not affords(costs[0], calls):
                continue
            taken, needed = run_length(kinds, costs, calls)
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
            "response": jsonb_or_none(attempt.response),
            "request": jsonb_or_none(attempt.request),
            "call": attempt.call,
        }
        return (await conn.execute(self._q["append_attempt"], params)).rowcount == 1

    async def _put_back(
        self, event_id: int, at: float, progress: dict[str, Any] | None, lease: str, attempt: Attempt | None
    ) -> bool:
        if not storable_id(event_id):
            return False
        params = {
            "id": event_id,
            "lease": lease,
            "available_at": at,
            "progress": jsonb_or_none(progress),
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
        if not storable_id(event_id):
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
            await conn.execute(self._q["elect_heads"], people_lists(people))
        return done

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
            await conn.execute(
                self._q["prune_last_companies"], {"before": now - ASSOCIATION_RETENTION_SECONDS}
            )
            await conn.execute(self._q["fold_state_counts"])
        await self._prune_usage(now, now - USAGE_COUNTED_RETENTION_SECONDS)
        return deleted
