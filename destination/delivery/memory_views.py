"""The in-memory store's inspection, dead-letter administration and read-only views."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from destination import jsonutil
from destination.delivery.memory_tables import PersonKey, Row, TablesHandle
from destination.delivery.store import (
    EVENT_STATES,
    FAILED_OUTCOMES,
    AttemptRecord,
    DeadLetter,
    EventState,
    EventSummary,
    StoredEvent,
)
from destination.delivery.store_base import EventLookups
from destination.events import Person, is_person, person_of


class MemoryViews(TablesHandle, EventLookups):
    """EventAdmin (and the budget read) of the memory store; see store.py."""

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

    def _dead_rows(
        self, ids: Sequence[int] | None, destination_id: str | None, *, with_rejected: bool = False
    ) -> list[Row]:
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

    async def find_events(self, message_id: str, destination_id: str | None = None) -> list[StoredEvent]:
        with self._open():
            return [
                _stored_event(row)
                for row in self._t.rows.values()
                if row.event.message_id == message_id
                and (destination_id is None or row.event.destination_id == destination_id)
            ]

    async def _list_events(
        self, destination_id: str | None, state: str | None, limit: int, offset: int, user: str | None
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


def _person(row: Row) -> Person:
    try:
        return person_of(jsonutil.loads(row.event.payload))
    except jsonutil.JSONDecodeError:
        return person_of(None)


def _summary(row: Row) -> EventSummary:
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


def _per_destination(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        states = found.setdefault(row.event.destination_id, {})
        states[row.state] = states.get(row.state, 0) + 1
    return found


def _dead_letter(row: Row) -> DeadLetter:
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


def _stored_event(row: Row) -> StoredEvent:
    return StoredEvent(
        **row.fields(),
        state=row.state,
        available_at=row.available_at,
        lease_owner=row.lease_owner,
        finished_at=row.finished_at,
        reason=row.reason,
        history=tuple(row.history),
    )
