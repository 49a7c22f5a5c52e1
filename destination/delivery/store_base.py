"""What every store backend shares beyond the Protocol: the four moves with the checks of what
callers pass (QueueMoves), get_dead_letter, lease tokens, list_events' parameters and page
bounds, and the limits of a backend's bulk work."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from destination import jsonutil
from destination.delivery.store_values import (
    ATTEMPT_OUTCOMES,
    FINAL_OUTCOMES,
    Attempt,
    EventState,
    EventSummary,
    FinalOutcome,
    StoredEvent,
)
from destination.events import ascii_lower

PRUNE_CHUNK = 1000  # rows per prune transaction, so ingest never waits long behind a prune
Row = TypeVar("Row", bound=Sequence[Any])
RECENT_ATTEMPTS_SCAN = 50_000  # recent_attempts looks no further back than this many attempts


class QueueMoves:
    """retry_later, complete, dead_letter and reject of every backend: each checks what it is
    given, then makes one move, which the backend's `_put_back` or `_finish` performs (recording
    `attempt`, when given, in the same transaction). A completed event's attempts keep their
    requests without bodies (the backend's `_finish` drops those of earlier attempts): the
    event's payload stays until it is pruned, and only a dead letter needs what was sent."""

    async def _put_back(
        self, event_id: int, at: float, progress: dict[str, Any] | None, lease: str, attempt: Attempt | None
    ) -> bool:
        raise NotImplementedError

    async def _finish(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        raise NotImplementedError

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
        kept = None if progress is None else dict(progress)
        return await self._put_back(event_id, available_at, kept, lease, attempt)

    async def complete(
        self,
        event_id: int,
        outcome: FinalOutcome,
        *,
        lease: str,
        attempt: Attempt | None = None,
        reason: str | None = None,
    ) -> bool:
        check_final_outcome(outcome)
        if attempt is not None:
            check_attempt(attempt)
            attempt = without_body(attempt)
        return await self._finish(event_id, outcome, reason, lease, attempt)

    async def dead_letter(
        self, event_id: int, reason: str, *, lease: str, attempt: Attempt | None = None
    ) -> bool:
        if attempt is not None:
            check_attempt(attempt)
        return await self._finish(event_id, "dead", reason, lease, attempt)

    async def reject(self, event_id: int, reason: str, *, lease: str, attempt: Attempt | None = None) -> bool:
        if attempt is not None:
            check_attempt(attempt)
        return await self._finish(event_id, "rejected", reason, lease, attempt)


def oldest_heads(found: Sequence[Sequence[Row]], limit: int) -> list[Row]:
    """The `limit` oldest of ready heads read apart (one read per payable cost: `payable_costs`),
    in claim order: by available_at (each row's last column), then id (its first)."""
    return sorted((row for rows in found for row in rows), key=lambda row: (row[-1], row[0]))[:limit]


def user_needle(user: str) -> str:
    """What the SQL stores look for in a payload's text before reading it as JSON: `user` as
    JSON writes it inside a string, lower-cased (a cheap test that every match passes)."""
    return ascii_lower(jsonutil.dumps(user).decode()[1:-1])


def check_final_outcome(outcome: str) -> None:
    if outcome not in FINAL_OUTCOMES:
        raise ValueError(
            f"an event is completed as delivered, unchanged, counted or filtered, not {outcome!r}"
        )


def without_body(attempt: Attempt) -> Attempt:
    """The attempt with its request's body left out (method, URL and headers kept)."""
    if attempt.request is None or "body" not in attempt.request:
        return attempt
    request = {k: v for k, v in attempt.request.items() if k != "body"}
    return dataclasses.replace(attempt, request=request)


def check_attempt(attempt: Attempt) -> None:
    if attempt.outcome not in ATTEMPT_OUTCOMES:
        raise ValueError(f"unknown attempt outcome {attempt.outcome!r}")


def new_lease() -> str:
    """A fresh lease token: unguessable, so no two claims ever share one."""
    return uuid.uuid4().hex


def storable_id(event_id: int) -> bool:
    """Ids are 64-bit integers in SQLite and PostgreSQL: anything else (a caller's 2**64) names
    no event, never a 500."""
    return 0 <= event_id < 2**63


def page_bound(n: int) -> int:
    """A page's limit or offset as the SQL stores pass it: never negative, and a caller's 2**64
    ("no limit") within a 64-bit integer, with room for the two added."""
    return min(max(n, 0), 2**62)


def event_filters(
    destination_id: str | None, state: str | None, limit: int, offset: int, user: str | None
) -> dict[str, Any]:
    """The parameters of the SQL stores' list_events query."""
    return {
        "destination_id": destination_id,
        "state": state,
        "limit": page_bound(limit),
        "offset": page_bound(offset),
        "user": user,
        "needle": None if user is None else user_needle(user),
        "email": None if user is None else ascii_lower(user),
    }


class EventLookups:
    """get_dead_letter and list_events of every backend: the first is get_event's event when it
    is a dead letter; the second checks its page before the backend's `_list_events` reads it."""

    async def get_event(self, event_id: int) -> StoredEvent | None:
        raise NotImplementedError

    async def _list_events(
        self, destination_id: str | None, state: str | None, limit: int, offset: int, user: str | None
    ) -> list[EventSummary]:
        raise NotImplementedError

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
        return await self._list_events(destination_id, state, limit, offset, user)

    async def get_dead_letter(self, event_id: int) -> StoredEvent | None:
        event = await self.get_event(event_id)
        return event if event is not None and event.state == "dead" else None
