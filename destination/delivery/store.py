"""The durable event store, as the rest of the service sees it: one Protocol and its value types.

Life of an event (DESIGN §5):

    enqueue ──> queued ──claim──> leased ──complete──> delivered | filtered   (pruned after the
                  ^                 │ │ └────reject────> rejected ─┐          dedupe window)
                  │                 │ │                   (replay by id)
                  └──retry_later────┘ └──dead_letter──> dead ──replay──> queued
                                                          └──purge──> (gone)

`rejected`: the planner refused the event itself (identify without an email, …): final, never
retried, not a dead letter; replayable by naming its id, pruned like delivered events.

Per-person order: the person is the event's `userId`, else its `anonymousId`, whatever its type
(`ordering_key`, events.ordering_key). Only the *head* of a person's queue (the oldest unfinished
event of its (destination_id, ordering_key)) can be claimed; the next one becomes the head when the head is
finished (delivered, unchanged, filtered, rejected or dead-lettered). A head waiting for its retry
blocks the person's later events; `retry_now` (an operator's "retry now") makes queued events due
at once, changing nothing else (not the order, nor the attempt counter).

Person runs (DESIGN §6): a claim takes a person's head and the person's following due events, in
received order (at most MAX_RUN), so that a person's backlog is not claimed one event per claim.
The worker sends each stretch of identify/group events between tracks (and writing one email) as
one Person upsert and each track as its own call, in order; after a failure to retry, the rest of
the claim waits. `calls` bounds what a claim takes by the calls its events need (`run_length`), so
the workers claim no more than the rate budget left can send.

Leases belong to claims: `claim` gives each claim a fresh lease token and leases its events until
`now + lease_seconds`; `renew` extends a claim that is still held. A lease that expires (crashed or
stalled worker) makes the events claimable again, under a new token. `retry_later`, `complete` and
`dead_letter` act only with the event's current token and return False otherwise, so a worker whose
lease expired cannot move an event that another claim now holds.

Attempts: `attempts` is the event's one attempt counter, owned by the store: the number of attempts
recorded (by retry_later, complete, dead_letter or reject) over the event's whole
history, replays included; it is never reset, so it always equals the length of the history, and
every view (dead letters, event status, logs) shows it. A replay stores the counter's value at that
moment in `replayed_at_attempt` (0 until the first replay), so the retry policy, which starts afresh
after a replay, counts `attempts - replayed_at_attempt` (`QueuedEvent.attempts_since_replay`): one
counter, and a baseline to subtract, never two counts that can disagree.

Memory (DESIGN §6), shared by every process on the store: the Gsid learnt for each company name,
and the state last delivered per person / company (for `GSD_UNCHANGED_TTL_SECONDS`), each kept per
`scope` (the Gainsight tenant: its domain).

Implementations: `sqlite.SQLiteStore` (durable, one machine), `postgres.PostgresStore` (durable,
shared by replicas) and `memory.MemoryStore` (the unit-test double). `stores.open_store(url)` picks
one from a URL and imports only that backend. Each durable backend records its schema version and
upgrades it when opened (migrations.py).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from destination import jsonutil
from destination.delivery.holds import HoldKind
from destination.events import ascii_lower

EventState = Literal["queued", "leased", "delivered", "unchanged", "filtered", "rejected", "dead"]
AttemptOutcome = Literal[
    "delivered", "unchanged", "throttled", "retryable", "aborted", "filtered", "rejected"
]
FinalOutcome = Literal["delivered", "unchanged", "filtered"]

EVENT_STATES: tuple[EventState, ...] = get_args(EventState)
ATTEMPT_OUTCOMES: frozenset[str] = frozenset(get_args(AttemptOutcome))
FINAL_OUTCOMES: frozenset[str] = frozenset(get_args(FinalOutcome))

DEDUPE_WINDOW_SECONDS = 7 * 86_400.0
"""messageIds are remembered per destination for 7 days (DESIGN §5)."""

RUN_KINDS = frozenset({"identify", "group"})
"""Kinds whose consecutive events share one Person upsert; any other kind (track) is one call."""

MAX_RUN = 100
"""At most this many events in one claim."""

MAX_RUN_CALLS = 20
"""At most this many calls for one claim: a person's calls go one after another, so this bounds how
long a claim runs (and what a shutdown that cannot wait for it leaves to be sent again)."""


def run_length(kinds: Sequence[str], calls: int) -> tuple[int, int]:
    """How many of a person's due events (their kinds in order, the head first) one claim takes,
    and the Gainsight calls they need: a track one, a stretch of identify/group events one. The
    head is always taken; then events while their calls fit in `calls` and MAX_RUN_CALLS (at most
    MAX_RUN events)."""
    taken = needed = 0
    for kind in kinds[:MAX_RUN]:
        cost = 0 if kind in RUN_KINDS and taken and kinds[taken - 1] in RUN_KINDS else 1
        if taken and needed + cost > min(calls, MAX_RUN_CALLS):
            break
        taken, needed = taken + 1, needed + cost
    return taken, needed


STATE_RETENTION_SECONDS = DEDUPE_WINDOW_SECONDS
"""Delivered state older than this is pruned whatever its TTL (a longer one is capped by it)."""

GSID_RETENTION_SECONDS = DEDUPE_WINDOW_SECONDS
"""A Gsid learnt longer ago than this is pruned: a company still sending group events is searched
for once more (one call per 50 companies) and its Gsid learnt anew, so the memory holds the
companies of the last week, not every company ever seen."""

RATE_WINDOW_RETENTION_SECONDS = 2 * 86_400.0
"""Rate-window counters older than this are pruned (the longest default window is a day)."""


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreClosedError(StoreError):
    """The store was closed; open a new one."""


class StoreUnavailableError(StoreError):
    """The store cannot commit now (locked, unreachable, failing I/O); it may recover by itself.
    Ingest answers `status` with the message, never a 200. `cause`, the driver's own words (they
    may name the database's host), is for operators: in str(), /ready and the log, not in answers
    to senders."""

    status = 503

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message if cause is None else f"{message}: {cause}")
        self.message = message
        self.cause = cause


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
    ordering_key: str  # the person: "userId:…", else "anonymousId:…" (events.ordering_key)
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
    attempts: int  # attempts recorded over the whole history: the store's one counter
    progress: dict[str, Any] | None  # what an earlier try of a resumable plan already achieved
    lease: str  # the token of the claim that holds it; needed to finish or retry it
    replayed_at_attempt: int = 0  # `attempts` when last replayed (0: never replayed)

    @property
    def attempts_since_replay(self) -> int:
        """What the retry policy counts: attempts since the last replay (or ever)."""
        return self.attempts - self.replayed_at_attempt


@dataclass(frozen=True, slots=True)
class Claim:
    """What one `claim` hands out per person: their head and following due events (a run)."""

    lease: str  # the token every later call on these events must present
    lease_until: float
    events: tuple[QueuedEvent, ...]  # one person's, in received order


@dataclass(frozen=True, slots=True)
class Attempt:
    """One Gainsight answer (or local decision) recorded against an event."""

    at: float
    outcome: AttemptOutcome
    status_code: int | None = None
    error: str | None = None
    response: Any = None  # Gainsight's JSON body, kept for dead-letter inspection
    # The request sent ({"method", "url", "headers" (secrets masked), "body"}), when one was.
    request: dict[str, Any] | None = None
    call: str | None = None  # id of the (possibly merged) call the event rode on


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
    lease_owner: str | None  # the lease token of the claim holding it
    finished_at: float | None
    reason: str | None  # why it was dead-lettered, rejected or filtered
    history: tuple[Attempt, ...]  # every recorded attempt, oldest first, across replays
    replayed_at_attempt: int = 0  # `attempts` when last replayed (0: never replayed)


StateKind = Literal["person", "company"]


@dataclass(frozen=True, slots=True)
class EventSummary:
    """One line of an event list (admin route, CLI): no payload, no history."""

    id: int
    destination_id: str
    message_id: str
    kind: str
    state: str
    received_at: float
    finished_at: float | None
    attempts: int  # recorded attempts, across replays: the length of the event's history
    reason: str | None
    user_id: str | None = None  # the event's userId, as text
    anonymous_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """An attempt with the event it belongs to, for the status page's recent errors."""

    event_id: int
    destination_id: str
    message_id: str
    kind: str
    attempt: Attempt
    state: str | None = None  # the event's state now (delivered since, say)


BudgetWindow = tuple[str, float, int]
"""(name, window_start, limit): one fixed rate window, e.g. ("minute", 1700000040.0, 100)."""


class EventQueue(Protocol):
    """What ingest and the workers use: events in, claims out, fates recorded."""

    async def enqueue(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store events; True per stored event, False per duplicate messageId of its destination
        seen within the dedupe window (earlier in the same call included). Returns once committed.
        """
        ...

    async def claim(
        self, now: float, limit: int, lease_seconds: float, *, calls: int | None = None
    ) -> list[Claim]:
        """Lease up to `limit` claims: ready person-queue heads (available_at <= now), oldest
        first, each with its person run (see above); one fresh lease token per claim. With
        `calls`, the claims' events need at most that many calls (`run_length`), one claim's
        head excepted (so a claim is never empty)."""
        ...

    async def renew(self, lease: str, now: float, lease_seconds: float) -> int:
        """Extend the claim's lease to `now + lease_seconds`; how many of its events it still
        holds (0 = the lease is lost)."""
        ...

    # retry_later, complete, dead_letter and reject record `attempt` (when given) in the same transaction,
    # and only when the lease still holds: a worker that lost its lease leaves no trace.

    async def retry_later(
        self,
        event_id: int,
        available_at: float,
        progress: Mapping[str, Any] | None,
        *,
        lease: str,
        attempt: Attempt | None = None,
    ) -> bool:
        """Release the lease; claimable again at `available_at`, with `progress` stored."""
        ...

    async def complete(
        self,
        event_id: int,
        outcome: FinalOutcome,
        *,
        lease: str,
        attempt: Attempt | None = None,
        reason: str | None = None,
    ) -> bool:
        """Finish the event as delivered, unchanged or filtered (`reason`: why it was filtered);
        the person's next event becomes claimable."""
        ...

    async def dead_letter(
        self, event_id: int, reason: str, *, lease: str, attempt: Attempt | None = None
    ) -> bool:
        """Park the event for inspection and replay; the person's next event becomes claimable."""
        ...

    async def reject(self, event_id: int, reason: str, *, lease: str, attempt: Attempt | None = None) -> bool:
        """Finish the event as rejected (the planner refused it) with the reason; the person's
        next event becomes claimable."""
        ...


class EventAdmin(Protocol):
    """Inspection and dead-letter administration (admin routes, CLI, /ready)."""

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
        ready at once, progress cleared, history and attempt counter kept (`replayed_at_attempt`
        set to the counter, so the retry policy starts afresh). Rejected events are
        re-queued too, but only when named in `ids`. Returns how many."""
        ...

    async def purge_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        """Delete dead letters and their history; their messageIds stay known for dedupe."""
        ...

    async def counts(self) -> dict[EventState, int]:
        """Number of events in each state (every state present)."""
        ...

    # ---- read-only views (admin routes, CLI, /status) ----

    async def find_events(self, message_id: str, destination_id: str | None = None) -> list[StoredEvent]:
        """Every stored event with this messageId (of `destination_id`, when given), oldest first."""
        ...

    async def list_events(
        self,
        destination_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        user: str | None = None,
    ) -> list[EventSummary]:
        """Events matching every filter, oldest first, a page at a time. `user`: the event's
        userId or anonymousId, exactly, or an email it carries for its person (`events.person_of`),
        ignoring ASCII case; read from the payload, so it walks every event (SQLite: beside the
        writer, which it never holds up)."""
        ...

    async def latest_finished(
        self, destination_id: str, state: str, since: float, limit: int
    ) -> list[EventSummary]:
        """The destination's events that finished in `state` at or after `since`, newest first."""
        ...

    async def person_head(self, destination_id: str, ordering_key: str) -> EventSummary | None:
        """The person's head: the unfinished event its later events wait behind (None: none)."""
        ...

    async def retry_now(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None, *, now: float
    ) -> int:
        """Queued events (all, or those matching both filters) waiting for a later time (a
        backoff, or the budget's next window) become claimable at `now`. Returns how many."""
        ...

    async def counts_by_destination(self) -> dict[str, dict[str, int]]:
        """{destination_id: {state: n}} for the states that hold events (zeros left out)."""
        ...

    async def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        """{destination_id: {state: n}} of events that finished (any final state) at or after `since`."""
        ...

    async def recent_attempts(
        self, destination_id: str | None = None, limit: int = 20, *, failed_only: bool = False
    ) -> list[AttemptRecord]:
        """The newest recorded attempts, newest first; `failed_only`: throttled, retryable, aborted.
        A backend may look only at the newest tens of thousands of attempts of all destinations."""
        ...


class RateCounter(Protocol):
    """Calls counted per tenant and window, shared by every process on the store (the governor)."""

    async def take_budget(
        self, tenant_key: str, windows: Sequence[BudgetWindow], calls: int = 1
    ) -> str | None:
        """Count `calls` calls in every window if each has room for all of them, atomically
        across every process sharing the store. Returns None when counted, else the name of a
        window without that much room (and counts nothing)."""
        ...

    async def budget_used(self, tenant_key: str, windows: Sequence[tuple[str, float]]) -> dict[str, int]:
        """Calls counted in each (window name, window start) for the tenant; 0 for a window unseen."""
        ...


class DeliveryMemory(Protocol):
    """What the executor remembers about Gainsight between claims (DESIGN §6), and the holds that
    keep two writers from creating one company or writing one person at once."""

    async def company_gsids(self, scope: str, names: Sequence[str]) -> dict[str, str]:
        """The remembered Gsid of each of `names` that has one (names compared exactly: the
        executor passes them as `company_key` folds them, ignoring case as Gainsight does)."""
        ...

    async def remember_gsids(self, scope: str, gsids: Mapping[str, str], now: float) -> None:
        """Remember (or replace) the Gsid of each company name."""
        ...

    async def forget_gsids(self, scope: str, names: Sequence[str]) -> None:
        """Forget the Gsids of companies gone from Gainsight."""
        ...

    async def delivered_states(
        self, scope: str, kind: StateKind, keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]:
        """The state last delivered for each key that has one remembered at or after `since`."""
        ...

    async def remember_states(
        self, scope: str, kind: StateKind, states: Mapping[str, Mapping[str, Any]], now: float
    ) -> None:
        """Remember (replace) what is now delivered for each key."""
        ...

    async def forget_states(self, scope: str, kind: StateKind, keys: Sequence[str]) -> None:
        """Forget delivered state (e.g. a write whose result is unknown)."""
        ...

    def hold(self, scope: str, kind: HoldKind, keys: Sequence[str]) -> AbstractAsyncContextManager[None]:
        """Hold these keys (casefolded) while what they name is written: company names around
        their search and writes, a person's email around its upsert. Nobody else sharing the
        store holds any of them meanwhile (see holds.py). PostgreSQL: across replicas, released
        if the holder dies; memory and SQLite: within the process."""
        ...


class Store(EventQueue, EventAdmin, RateCounter, DeliveryMemory, Protocol):
    """The whole store: each backend implements every part; callers take the part they use."""

    async def prune(self, now: float, *, state_ttl_seconds: float = STATE_RETENTION_SECONDS) -> int:
        """Forget what the dedupe window no longer needs: delivered/unchanged/filtered/rejected
        events received before `now - window` with their attempts, their messageIds, stale rate
        windows, delivered state older than `state_ttl_seconds` (GSD_UNCHANGED_TTL_SECONDS; at
        most STATE_RETENTION_SECONDS) and Gsids past GSID_RETENTION_SECONDS; then give the space
        back (SQLite: incremental vacuum; PostgreSQL's autovacuum reuses it). Returns events
        deleted."""
        ...

    async def close(self) -> None:
        """Finish pending work and release the store; later calls raise StoreClosedError."""
        ...


class FinishMoves:
    """complete, dead_letter and reject of every backend: each is one move, finishing the
    leased event in a state, which the backend's `_finish` makes. A completed event's attempts
    keep their requests without bodies (the backend's `_finish` drops those of earlier attempts):
    the event's payload stays until it is pruned, and only a dead letter needs what was sent."""

    async def _finish(
        self, event_id: int, state: EventState, reason: str | None, lease: str, attempt: Attempt | None
    ) -> bool:
        raise NotImplementedError

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
        return await self._finish(
            event_id, outcome, reason, lease, None if attempt is None else without_body(attempt)
        )

    async def dead_letter(
        self, event_id: int, reason: str, *, lease: str, attempt: Attempt | None = None
    ) -> bool:
        return await self._finish(event_id, "dead", reason, lease, attempt)

    async def reject(self, event_id: int, reason: str, *, lease: str, attempt: Attempt | None = None) -> bool:
        return await self._finish(event_id, "rejected", reason, lease, attempt)


FAILED_OUTCOMES: tuple[str, ...] = ("throttled", "retryable", "aborted")


def user_needle(user: str) -> str:
    """What the SQL stores look for in a payload's text before reading it as JSON: `user` as
    JSON writes it inside a string, lower-cased (a cheap test that every match passes)."""
    return ascii_lower(jsonutil.dumps(user).decode()[1:-1])


def check_final_outcome(outcome: str) -> None:
    if outcome not in FINAL_OUTCOMES:
        raise ValueError(f"an event is completed as delivered, unchanged or filtered, not {outcome!r}")


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
