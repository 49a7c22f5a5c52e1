"""The durable event store, as the rest of the service sees it: one Protocol (its parts below).

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
finished (delivered, unchanged, counted, filtered, rejected or dead-lettered). A head waiting for its retry
blocks the person's later events; `retry_now` (an operator's "retry now") makes queued events due
at once, changing nothing else (not the order, nor the attempt counter).

Person runs (DESIGN §6): a claim takes a person's head and the person's following due events, in
received order (at most MAX_RUN), so that a person's backlog is not claimed one event per claim.
The worker sends each stretch of identify/group events between tracks (and writing one email) as
one Person upsert and each track as its own call, in order; after a failure to retry, the rest of
the claim waits. `calls` bounds what a claim takes by the calls its events need (`run_length`), so
the workers claim no more than the rate budget left can send; each event's `cost` (set at ingest)
says which budget class it spends: sync, Timeline's own, both, or none.

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

Where it lives: this module holds the Protocol; store_values.py its value types, errors and limits
(re-exported here); store_base.py what every backend shares (the checks of claim and the four
moves, lease tokens, page bounds); rows.py the SQL rows as value types. Each backend keeps its
queue in `<backend>.py`, its inspection and views in `<backend>_views.py`, and its reads for the
capacity forecast (capacity_views.py) in `<backend>_capacity.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from destination.delivery.capacity_views import CapacityViews
from destination.delivery.holds import HoldKind
from destination.delivery.store_values import (
    ASSOCIATION_RETENTION_SECONDS,
    ATTEMPT_OUTCOMES,
    DEDUPE_WINDOW_SECONDS,
    EVENT_STATES,
    FAILED_OUTCOMES,
    FINAL_OUTCOMES,
    GSID_RETENTION_SECONDS,
    MAX_RUN,
    MAX_RUN_CALLS,
    NO_BOUND,
    RATE_WINDOW_RETENTION_SECONDS,
    RUN_KINDS,
    STATE_RETENTION_SECONDS,
    Attempt,
    AttemptOutcome,
    AttemptRecord,
    BudgetWindow,
    Calls,
    Claim,
    Cost,
    DeadLetter,
    EventState,
    EventSummary,
    FinalOutcome,
    LastCompany,
    NewEvent,
    QueuedEvent,
    StateKind,
    StoreClosedError,
    StoredEvent,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
    UnsupportedStoreURLError,
    affords,
    payable_costs,
    run_length,
)
from destination.delivery.usage_store import UsageCounts

__all__ = [
    "ASSOCIATION_RETENTION_SECONDS",
    "ATTEMPT_OUTCOMES",
    "DEDUPE_WINDOW_SECONDS",
    "EVENT_STATES",
    "FAILED_OUTCOMES",
    "FINAL_OUTCOMES",
    "GSID_RETENTION_SECONDS",
    "MAX_RUN",
    "MAX_RUN_CALLS",
    "NO_BOUND",
    "RATE_WINDOW_RETENTION_SECONDS",
    "RUN_KINDS",
    "STATE_RETENTION_SECONDS",
    "Attempt",
    "AttemptOutcome",
    "AttemptRecord",
    "BudgetWindow",
    "Calls",
    "Claim",
    "Cost",
    "DeadLetter",
    "DeliveryMemory",
    "EventAdmin",
    "EventQueue",
    "EventState",
    "EventSummary",
    "FinalOutcome",
    "LastCompany",
    "NewEvent",
    "QueuedEvent",
    "RateCounter",
    "StateKind",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreFullError",
    "StoreUnavailableError",
    "StoredEvent",
    "UnsupportedStoreURLError",
    "affords",
    "payable_costs",
    "run_length",
]


class EventQueue(Protocol):
    """What ingest and the workers use: events in, claims out, fates recorded."""

    async def enqueue(self, events: Sequence[NewEvent]) -> list[bool]:
        """Store events; True per stored event, False per duplicate messageId of its destination
        seen within the dedupe window (earlier in the same call included). Returns once committed.
        """
        ...

    async def claim(
        self, now: float, limit: int, lease_seconds: float, calls: Calls = NO_BOUND
    ) -> list[Claim]:
        """Lease up to `limit` (0 or more) claims until `now + lease_seconds`: ready person-queue
        heads (available_at <= now), oldest first, each with its person run (see above); one
        fresh lease token per claim. The claims' events need at most `calls` of each class (sync,
        Timeline: `run_length`, by each event's `cost`): a head whose cost does not fit is left
        for a later claim and the next head is looked at, so counted events (cost none) and
        Timeline activities are claimed while the sync budget is spent."""
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
        """Finish the event as delivered, unchanged, counted or filtered (`reason`: why it was filtered);
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

    async def last_companies(self, destination_id: str, persons: Sequence[str]) -> dict[str, str]:
        """The Gsid of the company each person (ordering key) was last associated with by a group
        event, for those that have one (DESIGN §3.6: Timeline activities and usage counts)."""
        ...

    async def remember_last_companies(
        self, destination_id: str, links: Mapping[str, LastCompany], now: float
    ) -> None:
        """Remember each person's last associated company, unless one that a later event of theirs
        made is remembered already (a worker whose lease lapsed may write after the one that took
        its events over)."""
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


class Store(EventQueue, EventAdmin, RateCounter, DeliveryMemory, CapacityViews, UsageCounts, Protocol):
    """The whole store: each backend implements every part; callers take the part they use."""

    async def prune(self, now: float, *, state_ttl_seconds: float = STATE_RETENTION_SECONDS) -> int:
        """Forget what the dedupe window no longer needs: delivered/unchanged/filtered/rejected
        events received before `now - window` with their attempts, their messageIds, stale rate
        windows, delivered state older than `state_ttl_seconds` (GSD_UNCHANGED_TTL_SECONDS; at
        most STATE_RETENTION_SECONDS), Gsids past GSID_RETENTION_SECONDS and last associations past
        ASSOCIATION_RETENTION_SECONDS; then give the space
        back (SQLite: incremental vacuum; PostgreSQL's autovacuum reuses it). Returns events
        deleted."""
        ...

    async def close(self) -> None:
        """Finish pending work and release the store; later calls raise StoreClosedError."""
        ...
