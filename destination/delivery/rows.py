"""Rows of the SQL stores as the store's value types: SQLite and PostgreSQL select the same columns
in the same order, and differ only in how a JSON column arrives (`decode`: bytes to parse on
SQLite, already parsed on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from destination import jsonutil
from destination.delivery.store import Attempt, QueuedEvent, StoredEvent

Decode = Callable[[Any], Any]


def queued_event(row: Sequence[Any], lease: str, decode: Decode) -> QueuedEvent:
    """id, destination, messageId, person, kind, payload, received, attempts, progress, replay
    baseline, cost."""
    (id_, destination_id, message_id, ordering_key, kind, payload, received_at, attempts, progress) = row[:9]
    return QueuedEvent(
        id=id_,
        destination_id=destination_id,
        message_id=message_id,
        ordering_key=ordering_key,
        kind=kind,
        payload=bytes(payload),
        received_at=received_at,
        attempts=attempts,
        progress=decode(progress),
        lease=lease,
        replayed_at_attempt=row[9],
        cost=row[10],
    )


def stored_event(row: Sequence[Any], history: Sequence[Sequence[Any]], decode: Decode) -> StoredEvent:
    (
        id_,
        destination_id,
        message_id,
        ordering_key,
        kind,
        payload,
        received_at,
        state,
        attempts,
        progress,
        available_at,
        lease_owner,
        finished_at,
        reason,
        replayed,
    ) = row
    return StoredEvent(
        id=id_,
        destination_id=destination_id,
        message_id=message_id,
        ordering_key=ordering_key,
        kind=kind,
        payload=bytes(payload),
        received_at=received_at,
        state=state,
        attempts=attempts,
        progress=decode(progress),
        available_at=available_at,
        lease_owner=lease_owner,
        finished_at=finished_at,
        reason=reason,
        history=tuple(attempt(a, decode) for a in history),
        replayed_at_attempt=replayed,
    )


def attempt(row: Sequence[Any], decode: Decode) -> Attempt:
    at, outcome, status_code, error, response, request, call = row
    return Attempt(at, outcome, status_code, error, decode(response), decode(request), call)


def per_destination(rows: Sequence[Sequence[Any]]) -> dict[str, dict[str, int]]:
    """(destination, state, n) rows as {destination: {state: n}}."""
    found: dict[str, dict[str, int]] = {}
    for destination_id, state, n in rows:
        found.setdefault(destination_id, {})[state] = int(n)
    return found


def loads_or_none(data: bytes | None) -> Any:
    """SQLite's decode: JSON columns arrive as text to parse."""
    return None if data is None else jsonutil.loads(data)


def as_is(value: Any) -> Any:
    """PostgreSQL's decode: JSON columns arrive parsed (jsonb)."""
    return value
