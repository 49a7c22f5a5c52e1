"""The in-memory store: the same semantics as SQLiteStore, nothing durable. For unit tests.

It mirrors the SQLite model (an explicit head flag per person, JSON round-trips for progress and
responses) so that the shared behavioural suite in tests/delivery holds for both. A lock makes it
safe to share between threads, as several processes share one SQLite file.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from destination import jsonutil
from destination.delivery.holds import HoldKind, Holds
from destination.delivery.store import (
    DEDUPE_WINDOW_SECONDS,
    EVENT_STATES,
    FAILED_OUTCOMES,
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
    QueuedEvent,
    StateKind,
    StoreClosedError,
    StoredEvent,
    check_attempt,
    new_lease,
    run_length,
    without_body,
)
from destination.events import Person, is_person, person_of

PersonKey = tuple[str, str]  # (destination_id, ordering_key)


@dataclass(slots=True)
class _Row:
    id: int
    event: NewEvent
    state: EventState = "queued"
    head: bool = False
    available_at: float | None = None
    lease_owner: str | None = None
    attempts: int = 0  # recorded attempts, whole history: never reset
    replayed_at_attempt: int = 0
    progress: dict[str, Any] | None = None
    finished_at: float | None = None
    reason: str | None = None
    history: list[Attempt] = field(default_factory=list)

    @property
    def person(self) -> PersonKey:
        return (self.event.destination_id, self.event.ordering_key)


def _json_copy(value: Any) -> Any:
    """What a JSON column would give back: a fresh copy, and an error if it is not JSON."""
    return None if value is None else jsonutil.loads(jsonutil.dumps(value))


@dataclass
class _Tables:
    """The store's data: what two handles on one memory store (two "replicas") share."""

    holds: Holds = field(default_factory=Holds)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[int, _Row] = field(default_factory=dict)
    unfinished: dict[PersonKey, list[int]] = field(default_factory=dict)  # queued/leased ids, ascending
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    windows: dict[tuple[str, str, float], int] = field(default_factory=dict)
    gsids: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # (gsid, learnt_at)
    states: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    last_id: int = 0
    recorded: list[tuple[int, int]] = field(default_factory=list)  # (event id, history index)


class MemoryStore(FinishMoves):
    """`Store` in process memory; see store.py for the semantics of each method. The unit tests'
    double: no store URL names it (create_app(store=…)). `sharing(other)` is a second handle on
    the same data, as a second replica on a PostgreSQL store would be: closing one leaves the other
    open, so the replica contract tests meet two stores here too."""

    def __init__(
        self,
        *,
        dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        tables: _Tables | None = None,
    ) -> None:
        self._dedupe_window = dedupe_window_seconds
        self._clock = clock
        self._t = tables or _Tables()
        self._closed = False

    def sharing(self, *, dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS) -> MemoryStore:
        """Another handle on this store's data (another "replica")."""
        return MemoryStore(dedupe_window_seconds=dedupe_window_seconds, clock=self._clock, tables=self._t)

    @contextmanager
    def _open(self) -> Iterator[None]:
        with self._t.lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            yield

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
        row = _Row(self._t.last_id, event, available_at=event.received_at)
        waiting = self._t.unfinished.setdefault(row.person, [])
        row.head = not waiting
        waiting.append(row.id)
        self._t.rows[row.id] = row
        return True

    async def claim(
        self, now: float, limit: int, lease_seconds: float, *, calls: int | None = None
    ) -> list[Claim]:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        with self._open():
            ready = [
                row
                for row in self._t.rows.values()
                if row.head and row.available_at is not None and row.available_at <= now
            ]
            ready.sort(key=lambda row: (row.available_at, row.id))
            left = calls if calls is not None else max(limit, 0) * MAX_RUN
            claims: list[Claim] = []
            for head in ready[: max(limit, 0)]:
                if claims and left < 1:
                    break
                due = [head]
                for event_id in self._t.unfinished[head.person][1:MAX_RUN]:
                    row = self._t.rows[event_id]
                    if row.available_at is None or row.available_at > now:
                        break
                    due.append(row)
                taken, needed = run_length([row.event.kind for row in due], left)
                left -= needed
                run = due[:taken]
                lease = new_lease()
                for row in run:
                    row.state = "leased"
                    row.available_at = now + lease_seconds
                    row.lease_owner = lease
                events = tuple(_queued_event(row) for row in run)
                claims.append(Claim(lease, now + lease_seconds, events))
            return claims

    async def renew(self, lease: str, now: float, lease_seconds: float) -> int:
        with self._open():
            held = [r for r in self._t.rows.values() if r.state == "leased" and r.lease_owner == lease]
            for row in held:
                row.available_at = now + lease_seconds
            return len(held)

    def _record(self, row: _Row, attempt: Attempt) -> None:
        copied = replace(attempt, response=_json_copy(attempt.response), request=_json_copy(attempt.request))
        row.history.append(copied)
        row.attempts += 1
        self._t.recorded.append((row.id, len(row.history) - 1))

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
        with self._open():
            row = self._leased_by(event_id, lease)
            if row is None:
                return False
            row.state = "queued"
            row.available_at = available_at
            row.lease_owner = None
            row.progress = _json_copy(None if progress is None else dict(progress))
            if attempt is not None:
                self._record(row, attempt)
            return True

    async def _finish(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        with self._open():
            return self._finish_row(event_id, state, reason, lease, attempt)

    def _leased_by(self, event_id: int, lease: str) -> _Row | None:
        row = self._t.rows.get(event_id)
        if row is None or row.state != "leased" or row.lease_owner != lease:
            return None
        return row

    def _finish_row(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        if attempt is not None:
            check_attempt(attempt)
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

    async def get_event(self, event_id: int) -> StoredEvent | None:
        with self._open():
            row = self._t.rows.get(event_id)
            return None if row is None else _stored_event(row)

    async def list_dead_letters(
        self, destination_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        with self._open():
            dead = self._dead_rows(None, destination_id)
            start = max(offset, 0)
            return [_dead_letter(row) for row in dead[start : start + max(limit, 0)]]

    async def get_dead_letter(self, event_id: int) -> StoredEvent | None:
        event = await self.get_event(event_id)
        return event if event is not None and event.state == "dead" else None

    def _dead_rows(
        self, ids: Sequence[int] | None, destination_id: str | None, *, with_rejected: bool = False
    ) -> list[_Row]:
        wanted = None if ids is None else set(ids)
        # Rejected events only when named by id (see select_dead_letters in queries.sql).
        states = ("dead", "rejected") if with_rejected and wanted is not None else ("dead",)
        return [
            row
            for row in self._t.rows.values()
            if row.state in states
            and (wanted is None or row.id in wanted)
            and (destination_id is None or row.event.destination_id == destination_id)
        ]

    async def replay_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        with self._open():
            rows = self._dead_rows(ids, destination_id, with_rejected=True)
            for row in rows:
                row.state = "queued"
                row.head = False
                row.available_at = row.event.received_at
                row.replayed_at_attempt = row.attempts
                row.progress = None
                row.finished_at = None
                row.reason = None
                bisect.insort(self._t.unfinished.setdefault(row.person, []), row.id)
            for person in {row.person for row in rows}:
                self._reset_head(person)
            return len(rows)

    def _reset_head(self, person: PersonKey) -> None:
        waiting = [self._t.rows[i] for i in self._t.unfinished[person]]
        if any(row.state == "leased" for row in waiting):
            return  # in flight: it stays the head until it finishes
        for row in waiting:
            row.head = row is waiting[0]

    async def purge_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        with self._open():
            rows = self._dead_rows(ids, destination_id)
            for row in rows:
                del self._t.rows[row.id]
            return len(rows)

    async def counts(self) -> dict[EventState, int]:
        with self._open():
            found = dict.fromkeys(EVENT_STATES, 0)
            for row in self._t.rows.values():
                found[row.state] += 1
            return found

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

    async def delivered_states(
        self, scope: str, kind: StateKind, keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]:
        with self._open():
            found = {}
            for key in keys:
                remembered = self._t.states.get((scope, kind, key))
                if remembered is not None and remembered[0] >= since:
                    found[key] = _json_copy(remembered[1])
            return found

    async def remember_states(
        self, scope: str, kind: StateKind, states: Mapping[str, Mapping[str, Any]], now: float
    ) -> None:
        with self._open():
            for key, state in states.items():
                self._t.states[(scope, kind, key)] = (now, _json_copy(dict(state)))

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
                if row.state in ("delivered", "unchanged", "filtered", "rejected")
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
            return len(old)

    # ---- read-only views ----

    async def find_events(self, message_id: str, destination_id: str | None = None) -> list[StoredEvent]:
        with self._open():
            return [
                _stored_event(row)
                for row in self._t.rows.values()
                if row.event.message_id == message_id
                and (destination_id is None or row.event.destination_id == destination_id)
            ]

    async def list_events(
        self,
        destination_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        user: str | None = None,
    ) -> list[EventSummary]:
        with self._open():
            rows = [
                row
                for row in self._t.rows.values()
                if (destination_id is None or row.event.destination_id == destination_id)
                and (state is None or row.state == state)
                and (user is None or is_person(_person(row), user))
            ]
            start = max(offset, 0)
            return [_summary(row) for row in rows[start : start + max(limit, 0)]]

    async def latest_finished(
        self, destination_id: str, state: str, since: float, limit: int
    ) -> list[EventSummary]:
        with self._open():
            rows = [
                row
                for row in self._t.rows.values()
                if row.event.destination_id == destination_id
                and row.state == state
                and row.finished_at is not None
                and row.finished_at >= since
            ]
            rows.sort(key=lambda row: (row.finished_at, row.id), reverse=True)
            return [_summary(row) for row in rows[: max(limit, 0)]]

    async def person_head(self, destination_id: str, ordering_key: str) -> EventSummary | None:
        with self._open():
            waiting = self._t.unfinished.get((destination_id, ordering_key), [])
            heads = [self._t.rows[i] for i in waiting if self._t.rows[i].head]
            return _summary(heads[0]) if heads else None

    async def retry_now(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None, *, now: float
    ) -> int:
        wanted = None if ids is None else set(ids)
        with self._open():
            rows = [
                row
                for row in self._t.rows.values()
                if row.state == "queued"
                and row.available_at is not None
                and row.available_at > now
                and (wanted is None or row.id in wanted)
                and (destination_id is None or row.event.destination_id == destination_id)
            ]
            for row in rows:
                row.available_at = now
            return len(rows)

    async def counts_by_destination(self) -> dict[str, dict[str, int]]:
        with self._open():
            return _per_destination(row for row in self._t.rows.values())

    async def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        with self._open():
            return _per_destination(
                row
                for row in self._t.rows.values()
                if row.finished_at is not None and row.finished_at >= since
            )

    async def recent_attempts(
        self, destination_id: str | None = None, limit: int = 20, *, failed_only: bool = False
    ) -> list[AttemptRecord]:
        with self._open():
            found: list[AttemptRecord] = []
            for event_id, index in reversed(self._t.recorded):  # newest first
                if len(found) >= limit:
                    break
                row = self._t.rows.get(event_id)  # None once purged or pruned
                if row is None or (destination_id is not None and row.event.destination_id != destination_id):
                    continue
                attempt = row.history[index]
                if not failed_only or attempt.outcome in FAILED_OUTCOMES:
                    e = row.event
                    found.append(
                        AttemptRecord(row.id, e.destination_id, e.message_id, e.kind, attempt, row.state)
                    )
            return found

    async def budget_used(self, tenant_key: str, windows: Sequence[tuple[str, float]]) -> dict[str, int]:
        with self._open():
            return {name: self._t.windows.get((tenant_key, name, start), 0) for name, start in windows}

    async def close(self) -> None:
        with self._t.lock:
            self._closed = True


def _queued_event(row: _Row) -> QueuedEvent:
    e = row.event
    return QueuedEvent(
        id=row.id,
        destination_id=e.destination_id,
        message_id=e.message_id,
        ordering_key=e.ordering_key,
        kind=e.kind,
        payload=e.payload,
        received_at=e.received_at,
        attempts=row.attempts,
        progress=_json_copy(row.progress),
        lease=row.lease_owner or "",
        replayed_at_attempt=row.replayed_at_attempt,
    )


def _person(row: _Row) -> Person:
    try:
        return person_of(jsonutil.loads(row.event.payload))
    except jsonutil.JSONDecodeError:
        return person_of(None)


def _summary(row: _Row) -> EventSummary:
    e = row.event
    person = _person(row)
    return EventSummary(
        id=row.id,
        destination_id=e.destination_id,
        message_id=e.message_id,
        kind=e.kind,
        state=row.state,
        received_at=e.received_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        reason=row.reason,
        user_id=person.user_id,
        anonymous_id=person.anonymous_id,
    )


def _per_destination(rows: Iterable[_Row]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        states = found.setdefault(row.event.destination_id, {})
        states[row.state] = states.get(row.state, 0) + 1
    return found


def _dead_letter(row: _Row) -> DeadLetter:
    e = row.event
    assert row.reason is not None and row.finished_at is not None
    return DeadLetter(
        id=row.id,
        destination_id=e.destination_id,
        message_id=e.message_id,
        ordering_key=e.ordering_key,
        kind=e.kind,
        received_at=e.received_at,
        attempts=row.attempts,
        reason=row.reason,
        dead_at=row.finished_at,
    )


def _stored_event(row: _Row) -> StoredEvent:
    e = row.event
    return StoredEvent(
        id=row.id,
        destination_id=e.destination_id,
        message_id=e.message_id,
        ordering_key=e.ordering_key,
        kind=e.kind,
        payload=e.payload,
        received_at=e.received_at,
        state=row.state,
        attempts=row.attempts,
        progress=_json_copy(row.progress),
        available_at=row.available_at,
        lease_owner=row.lease_owner,
        finished_at=row.finished_at,
        reason=row.reason,
        history=tuple(row.history),
        replayed_at_attempt=row.replayed_at_attempt,
    )
