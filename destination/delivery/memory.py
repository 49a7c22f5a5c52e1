"""The in-memory store: the same semantics as SQLiteStore, nothing durable. For unit tests.

It mirrors the SQLite model (an explicit head flag per person, JSON round-trips for progress and
responses) so that the shared behavioural suite in tests/delivery holds for both. A lock makes it
safe to share between threads, as several processes share one SQLite file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from destination.delivery.holds import HoldKind
from destination.delivery.memory_capacity import MemoryCapacity
from destination.delivery.memory_tables import Row, Tables, json_copy
from destination.delivery.memory_views import MemoryViews
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
    QueuedEvent,
    StateKind,
    affords,
    run_length,
)
from destination.delivery.store_base import QueueMoves, new_lease, without_body
from destination.delivery.usage_memory import UsageMemory
from destination.delivery.usage_store import USAGE_COUNTED_RETENTION_SECONDS


class MemoryStore(MemoryViews, MemoryCapacity, UsageMemory, QueueMoves):
    """`Store` in process memory; see store.py for the semantics of each method. The unit tests'
    double: no store URL names it (create_app(store=…)). `sharing(other)` is a second handle on
    the same data, as a second replica on a PostgreSQL store would be: closing one leaves the other
    open, so the replica contract tests meet two stores here too."""

    def __init__(
        self,
        *,
        dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        tables: Tables | None = None,
    ) -> None:
        self._dedupe_window = dedupe_window_seconds
        self._clock = clock
        self._t = tables or Tables()
        self._closed = False

    def sharing(self, *, dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS) -> MemoryStore:
        """Another handle on this store's data (another "replica")."""
        return MemoryStore(dedupe_window_seconds=dedupe_window_seconds, clock=self._clock, tables=self._t)

    async def enqueue(self, events: Sequence[NewEvent]) -> list[bool]:
        with self._open():
            return [self._enqueue_one(event) for event in events]

    def _enqueue_one(self, event: NewEvent) -> bool:
        key = (event.destination_id, event.message_id)
        seen_at = self._t.seen.get(key)
        if seen_at is not None and seen_at > event.received_at - self._dedupe_window:
            return False
        self._t.seen[key] = event.received_at
        self._t.last_id += 1
        row = Row(self._t.last_id, event, available_at=event.received_at)
        waiting = self._t.unfinished.setdefault(row.person, [])
        row.head = not waiting
        waiting.append(row.id)
        self._t.rows[row.id] = row
        return True

    async def claim(
        self, now: float, limit: int, lease_seconds: float, calls: Calls = NO_BOUND
    ) -> list[Claim]:
        lease_until = now + lease_seconds
        with self._open():
            ready = [
                row
                for row in self._t.rows.values()
                if row.head
                and row.available_at is not None
                and row.available_at <= now
                and affords(row.event.cost, calls)  # as ready_heads leaves out a spent class's heads
            ]
            ready.sort(key=lambda row: (row.available_at, row.id))
            left = calls
            claims: list[Claim] = []
            for head in ready[: max(limit, 0)]:
                if not affords(head.event.cost, left):
                    continue
                due = [head]
                for event_id in self._t.unfinished[head.person][1:MAX_RUN]:
                    row = self._t.rows[event_id]
                    if row.available_at is None or row.available_at > now:
                        break
                    due.append(row)
                taken, needed = run_length([r.event.kind for r in due], [r.event.cost for r in due], left)
                left -= needed
                run = due[:taken]
                lease = new_lease()
                for row in run:
                    row.state = "leased"
                    row.available_at = lease_until
                    row.lease_owner = lease
                events = tuple(_queued_event(row) for row in run)
                claims.append(Claim(lease, lease_until, events))
            return claims

    async def renew(self, lease: str, now: float, lease_seconds: float) -> int:
        with self._open():
            held = [r for r in self._t.rows.values() if r.state == "leased" and r.lease_owner == lease]
            for row in held:
                row.available_at = now + lease_seconds
            return len(held)

    def _record(self, row: Row, attempt: Attempt) -> None:
        copied = replace(attempt, response=json_copy(attempt.response), request=json_copy(attempt.request))
        row.history.append(copied)
        row.attempts += 1
        self._t.recorded.append((row.id, len(row.history) - 1))

    async def _put_back(
        self, event_id: int, at: float, progress: dict[str, Any] | None, lease: str, attempt: Attempt | None
    ) -> bool:
        with self._open():
            row = self._leased_by(event_id, lease)
            if row is None:
                return False
            row.state = "queued"
            row.available_at = at
            row.lease_owner = None
            row.progress = json_copy(progress)
            if attempt is not None:
                self._record(row, attempt)
            return True

    async def _finish(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        with self._open():
            return self._finish_row(event_id, state, reason, lease, attempt)

    def _leased_by(self, event_id: int, lease: str) -> Row | None:
        row = self._t.rows.get(event_id)
        if row is None or row.state != "leased" or row.lease_owner != lease:
            return None
        return row

    def _finish_row(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        row = self._leased_by(event_id, lease)
        if row is None:
            return False
        if state in FINAL_OUTCOMES:
            row.history[:] = [without_body(a) for a in row.history]
        if attempt is not None:
            self._record(row, attempt)
        row.state = state
        row.head = False
        row.available_at = None
        row.lease_owner = None
        row.finished_at = self._clock()
        row.reason = reason
        waiting = self._t.unfinished[row.person]
        waiting.remove(row.id)
        if waiting:
            self._t.rows[waiting[0]].head = True
        else:
            del self._t.unfinished[row.person]
        return True

    async def take_budget(
        self, tenant_key: str, windows: Sequence[BudgetWindow], calls: int = 1
    ) -> str | None:
        with self._open():
            keys = [(tenant_key, name, start) for name, start, _ in windows]
            for key, (name, _, limit) in zip(keys, windows, strict=True):
                if self._t.windows.get(key, 0) + calls > limit:
                    return name
            for key in keys:
                self._t.windows[key] = self._t.windows.get(key, 0) + calls
            return None

    async def company_gsids(self, scope: str, names: Sequence[str]) -> dict[str, str]:
        with self._open():
            return {n: g[0] for n in names if (g := self._t.gsids.get((scope, n))) is not None}

    async def remember_gsids(self, scope: str, gsids: Mapping[str, str], now: float) -> None:
        with self._open():
            for name, gsid in gsids.items():
                self._t.gsids[(scope, name)] = (gsid, now)

    async def forget_gsids(self, scope: str, names: Sequence[str]) -> None:
        with self._open():
            for name in names:
                self._t.gsids.pop((scope, name), None)

    async def last_companies(self, destination_id: str, persons: Sequence[str]) -> dict[str, str]:
        with self._open():
            found = ((p, self._t.last_companies.get((destination_id, p))) for p in persons)
            return {p: g[0] for p, g in found if g is not None}

    async def remember_last_companies(
        self, destination_id: str, links: Mapping[str, LastCompany], now: float
    ) -> None:
        with self._open():
            for person, link in links.items():
                held = self._t.last_companies.get((destination_id, person))
                if held is None or held[2] <= link.event_id:
                    self._t.last_companies[(destination_id, person)] = (link.gsid, now, link.event_id)

    async def delivered_states(
        self, scope: str, kind: StateKind, keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]:
        with self._open():
            found = {}
            for key in keys:
                remembered = self._t.states.get((scope, kind, key))
                if remembered is not None and remembered[0] >= since:
                    found[key] = json_copy(remembered[1])
            return found

    async def remember_states(
        self, scope: str, kind: StateKind, states: Mapping[str, Mapping[str, Any]], now: float
    ) -> None:
        with self._open():
            for key, state in states.items():
                self._t.states[(scope, kind, key)] = (now, json_copy(dict(state)))

    async def forget_states(self, scope: str, kind: StateKind, keys: Sequence[str]) -> None:
        with self._open():
            for key in keys:
                self._t.states.pop((scope, kind, key), None)

    def hold(self, scope: str, kind: HoldKind, keys: Sequence[str]) -> AbstractAsyncContextManager[None]:
        return self._t.holds.hold(scope, kind, keys)

    async def prune(self, now: float, *, state_ttl_seconds: float = STATE_RETENTION_SECONDS) -> int:
        before = now - self._dedupe_window
        state_before = now - min(state_ttl_seconds, STATE_RETENTION_SECONDS)
        with self._open():
            old = [
                row.id
                for row in self._t.rows.values()
                if row.state in ("delivered", "unchanged", "counted", "filtered", "rejected")
                and row.event.received_at < before
            ]
            for event_id in old:
                del self._t.rows[event_id]
            self._t.seen = {k: at for k, at in self._t.seen.items() if at >= before}
            oldest_window = now - RATE_WINDOW_RETENTION_SECONDS
            self._t.windows = {k: n for k, n in self._t.windows.items() if k[2] >= oldest_window}
            oldest_state = state_before
            self._t.states = {k: v for k, v in self._t.states.items() if v[0] >= oldest_state}
            oldest_gsid = now - GSID_RETENTION_SECONDS
            self._t.gsids = {k: v for k, v in self._t.gsids.items() if v[1] >= oldest_gsid}
            oldest_link = now - ASSOCIATION_RETENTION_SECONDS
            links = self._t.last_companies
            self._t.last_companies = {k: v for k, v in links.items() if v[1] >= oldest_link}
            self._prune_usage(now, now - USAGE_COUNTED_RETENTION_SECONDS)
            return len(old)

    async def close(self) -> None:
        with self._t.lock:
            self._closed = True


def _queued_event(row: Row) -> QueuedEvent:
    return QueuedEvent(**row.fields(), lease=row.lease_owner or "", cost=row.event.cost)
