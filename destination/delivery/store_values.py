"""The store's value types, errors and limits: what callers and backends hand each other."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

EventState = Literal["queued", "leased", "delivered", "unchanged", "counted", "filtered", "rejected", "dead"]
AttemptOutcome = Literal[
    "delivered", "unchanged", "counted", "throttled", "retryable", "aborted", "filtered", "rejected"
]
FinalOutcome = Literal["delivered", "unchanged", "counted", "filtered"]
"""`counted`: a track event whose usage count is in the store (DESIGN §3.7, usage_store.py)."""

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


Cost = Literal["sync", "timeline", "both", "none"]
"""What delivering one event spends of the rate budget, decided at ingest (events.cost): a sync
call (identify, group, a published track), a call of Timeline's own budget (an activity, DESIGN
§3.6), both (an activity with alsoPublish), or nothing (a counted event, §3.7)."""

COSTS: tuple[Cost, ...] = get_args(Cost)
_CALLS: dict[str, tuple[int, int]] = {"sync": (1, 0), "timeline": (0, 1), "both": (1, 1), "none": (0, 0)}


@dataclass(frozen=True, slots=True)
class Calls:
    """Calls of each budget class: sync, and Timeline's own."""

    sync: int
    timeline: int

    def __sub__(self, other: Calls) -> Calls:
        return Calls(self.sync - other.sync, self.timeline - other.timeline)


class LastCompany(NamedTuple):
    """A person's last association by a group event: the company's Gsid, and that event's store
    id (ids order a person's events as received)."""

    gsid: str
    event_id: int


NO_BOUND = Calls(sys.maxsize, sys.maxsize)
"""A claim's calls when no rate budget bounds it (the workers always pass the budget left)."""


def affords(cost: str, calls: Calls) -> bool:
    """Whether `calls` can pay for a person's head of this cost (so that a claim may take it)."""
    sync, timeline = _CALLS.get(cost, (1, 0))
    return sync <= calls.sync and timeline <= calls.timeline


def payable_costs(calls: Calls) -> tuple[Cost, ...] | None:
    """The costs of the heads a claim with `calls` can take; None: any (no class is spent). The
    SQL stores then read the heads of those costs alone (an index each), so a backlog waiting for
    a spent class is neither read nor in the way of the heads that can go."""
    if calls.sync > 0 and calls.timeline > 0:
        return None
    return tuple(cost for cost in COSTS if affords(cost, calls))


def run_length(kinds: Sequence[str], costs: Sequence[str], calls: Calls) -> tuple[int, Calls]:
    """How many of a person's due events (their kinds and costs in order, the head first) one
    claim takes, and the calls they need: a track its cost's, a stretch of identify/group events
    one sync call. Events are taken while their calls fit in `calls` (each class) and in
    MAX_RUN_CALLS (both classes together), at most MAX_RUN; 0 when the head does not fit."""
    taken = sync = timeline = 0
    for kind, cost in zip(kinds[:MAX_RUN], costs, strict=False):
        more_sync, more_timeline = _CALLS.get(cost, (1, 0))
        if kind in RUN_KINDS and taken and kinds[taken - 1] in RUN_KINDS:
            more_sync = 0  # the same Person upsert
        after = (sync + more_sync, timeline + more_timeline)
        if after[0] > calls.sync or after[1] > calls.timeline or sum(after) > MAX_RUN_CALLS:
            break
        taken, (sync, timeline) = taken + 1, after
    return taken, Calls(sync, timeline)


STATE_RETENTION_SECONDS = DEDUPE_WINDOW_SECONDS
"""Delivered state older than this is pruned whatever its TTL (a longer one is capped by it)."""

GSID_RETENTION_SECONDS = DEDUPE_WINDOW_SECONDS
"""A Gsid learnt longer ago than this is pruned: a company still sending group events is searched
for once more (one call per 50 companies) and its Gsid learnt anew, so the memory holds the
companies of the last week, not every company ever seen."""

ASSOCIATION_RETENTION_SECONDS = 90 * 86_400.0
"""A person's last company association (DESIGN §3.6) is forgotten this long after it was last
written: long enough for a source that sends group once in a while, bounded all the same."""

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
    cost: Cost = "sync"  # what its delivery spends (plan.delivery_cost)


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
    cost: Cost = "sync"

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

FAILED_OUTCOMES: tuple[str, ...] = ("throttled", "retryable", "aborted")
"""Outcomes of attempts that did not deliver (the status page's recent errors)."""
