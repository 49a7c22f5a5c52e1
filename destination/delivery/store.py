"""The durable event store, as the rest of the service sees it: one Protocol and its value types.

Life of an event (DESIGN §5):

    enqueue ──> queued ──claim──> leased ──complete──> delivered | filtered   (pruned after the
                  ^                 │ │                                        dedupe window)
                  └──retry_later────┘ └──dead_letter──> dead ──replay──> queued
                                                          └──purge──> (gone)

Per-person order: only the *head* of a person's queue (the oldest unfinished event of its
(destination_id, ordering_key)) can be claimed; the next one becomes the head when the head is
delivered, filtered or dead-lettered. A head waiting for its retry blocks the person's later events.

Leases: `claim` leases each event to an owner until `now + lease_seconds`; a lease that expires
(crashed or stalled worker) makes the event claimable again. `retry_later`, `complete` and
`dead_letter` act only for the owner of the current lease and return False otherwise, so a worker
that lost its lease cannot move an event that another worker now holds.

Implementations: `sqlite.SQLiteStore` (durable) and `memory.MemoryStore` (the unit-test double).
`stores.open_store(url)` picks one from a URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

EventState = Literal["queued", "leased", "delivered", "filtered", "dead"]
AttemptOutcome = Literal["delivered", "throttled", "retryable", "aborted", "filtered"]
FinalOutcome = Literal["delivered", "filtered"]

EVENT_STATES: tuple[EventState, ...] = get_args(EventState)
ATTEMPT_OUTCOMES: frozenset[str] = frozenset(get_args(AttemptOutcome))
FINAL_OUTCOMES: frozenset[str] = frozenset(get_args(FinalOutcome))

DEDUPE_WINDOW_SECONDS = 7 * 86_400.0
"""messageIds are remembered per destination for 7 days (DESIGN §5)."""


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreClosedError(StoreError):
    """The store was closed; open a new one."""


class StoreUnavailableError(StoreError):
    """The store cannot commit now (locked, unreachable, failing I/O); it may recover by itself.
    Ingest answers `status` with the message, never a 200."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StoreFullError(StoreUnavailableError):
    """No space left to commit (disk full)."""

    status = 507


class UnsupportedStoreURLError(StoreError, ValueError):
    """The store URL names a backend this build cannot open."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An accepted event, as ingest hands it to the store."""

    destination_id: str
    message_id: str
    ordering_key: str  # the person: email, else userId, else anonymousId
    kind: str  # identify | group | track
    payload: bytes  # the event's JSON
    received_at: float  # unix seconds; also the dedupe clock


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """An event leased to a worker by `claim`."""

    id: int
    destination_id: str
    message_id: str
    ordering_key: str
    kind: str
    payload: bytes
    received_at: float
    attempts: int  # number of this try: 1 on the first claim, +1 on every claim since (re)queueing
    progress: dict[str, Any] | None  # what an earlier try of a resumable plan already achieved


@dataclass(frozen=True, slots=True)
class Attempt:
    """One Gainsight answer (or local decision) recorded against an event."""

    at: float
    outcome: AttemptOutcome
    status_code: int | None = None
    error: str | None = None
    response: Any = None  # Gainsight's JSON body, kept for dead-letter inspection


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One line of the dead-letter list."""

    id: int
    destination_id: str
    message_id: str
    ordering_key: str
    kind: str
    received_at: float
    attempts: int
    reason: str
    dead_at: float


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """Everything the store holds about one event, for inspection and admin routes."""

    id: int
    destination_id: str
    message_id: str
    ordering_key: str
    kind: str
    payload: bytes
    received_at: float
    state: EventState
    attempts: int
    progress: dict[str, Any] | None
    available_at: float | None  # next claimable at (lease expiry while leased); None once final
    lease_owner: str | None
    finished_at: float | None
    reason: str | None  # why it was dead-lettered
    history: tuple[Attempt, ...]  # every recorded attempt, oldest first, across replays


BudgetWindow = tuple[str, float, int]
"""(name, window_start, limit): one fixed rate window, e.g. ("minute", 1700000040.0, 100)."""


class Store(Protocol):
    """Durable queue, dead letters and shared rate-window counters. All methods are coroutines."""

    async def enqueue(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store events; True per stored event, False per duplicate messageId of its destination
        seen within the dedupe window (earlier in the same call included). Returns once committed.
        """
        ...

    async def claim(self, now: float, limit: int, lease_seconds: float, owner: str) -> list[QueuedEvent]:
        """Lease up to `limit` ready person-queue heads (available_at <= now), oldest first."""
        ...

    async def record_attempt(self, event_id: int, attempt: Attempt) -> bool:
        """Append to the event's history; False when there is no such event."""
        ...

    async def retry_later(
        self, event_id: int, available_at: float, progress: Mapping[str, Any] | None, *, owner: str
    ) -> bool:
        """Release the lease; claimable again at `available_at`, with `progress` stored."""
        ...

    async def complete(self, event_id: int, outcome: FinalOutcome, *, owner: str) -> bool:
        """Finish the event as delivered or filtered; the person's next event becomes claimable."""
        ...

    async def dead_letter(self, event_id: int, reason: str, *, owner: str) -> bool:
        """Park the event for inspection and replay; the person's next event becomes claimable."""
        ...

    async def get_event(self, event_id: int) -> StoredEvent | None: ...

    async def list_dead_letters(
        self, destination_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """Dead letters, oldest event first."""
        ...

    async def get_dead_letter(self, event_id: int) -> StoredEvent | None:
        """The dead letter with its payload and every attempt; None if `event_id` is not dead."""
        ...

    async def replay_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        """Re-queue dead letters (all, or those matching both filters) in their original order:
        ready at once, attempts reset to 0, progress cleared, history kept. Returns how many."""
        ...

    async def purge_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        """Delete dead letters and their history; their messageIds stay known for dedupe."""
        ...

    async def counts(self) -> dict[EventState, int]:
        """Number of events in each state (every state present)."""
        ...

    async def take_budget(self, tenant_key: str, windows: Sequence[BudgetWindow]) -> str | None:
        """Count one call in every window if all are below their limit, atomically across every
        process sharing the store. Returns None when counted, else the name of a full window
        (and counts nothing)."""
        ...

    async def prune(self, now: float) -> int:
        """Forget what the dedupe window no longer needs: delivered/filtered events received
        before `now - window`, their messageIds, and stale rate windows. Returns events deleted."""
        ...

    async def close(self) -> None:
        """Finish pending work and release the store; later calls raise StoreClosedError."""
        ...


def check_final_outcome(outcome: str) -> None:
    if outcome not in FINAL_OUTCOMES:
        raise ValueError(f"an event is completed as delivered or filtered, not {outcome!r}")


def check_attempt(attempt: Attempt) -> None:
    if attempt.outcome not in ATTEMPT_OUTCOMES:
        raise ValueError(f"unknown attempt outcome {attempt.outcome!r}")


RATE_WINDOW_RETENTION_SECONDS = 2 * 86_400.0
"""Rate-window counters older than this are pruned (the longest default window is a day)."""
