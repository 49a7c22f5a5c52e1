"""What the executor takes and gives back (executor.py).

A `Job` is one claimed event (its store id, its plan, what earlier tries achieved); a `Fate` is how
it ended this try, with the `Call` (client.py) that decided it. `Batch` is what one execution knows
across its company writes and person runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from destination.delivery.store import DeliveryMemory
from destination.errors import GainsightError
from destination.gainsight.client import Call, Credentials, GainsightClient
from destination.gainsight.plan import DeliveryPlan

SavedReason = Literal["coalesced", "unchanged", "company_batched", "gsid_known"]
Outcome = Literal[
    "delivered",
    "unchanged",
    "counted",
    "filtered",
    "throttled",
    "retryable",
    "aborted",
    "rejected",
    "deferred",
]
"""`rejected`: the event itself cannot be written as it stands (a tenant's key matching no company
when creating is off, or several): final, not a dead letter, replayable by id (DESIGN §3.3).
`counted`: its usage count is in the store (DESIGN §3.7); `filtered`: finished without a write,
the fate's `reason` says why (a counted event with no company)."""
Saved = Callable[[str, SavedReason, int], None]
"""Counts calls saved: (destination id, reason, how many)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """What an earlier try of an event achieved; the store keeps it between tries."""

    company_gsid: str | None = None  # a group's company is written and has this Gsid
    activity_written: bool = False  # a Timeline activity is saved: a later try only publishes it

    def as_dict(self) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        if self.company_gsid is not None:
            found["company_gsid"] = self.company_gsid
        if self.activity_written:
            found["activity_written"] = True
        return found or None

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Progress:
        gsid = (stored or {}).get("company_gsid")
        written = (stored or {}).get("activity_written") is True
        return cls(gsid if isinstance(gsid, str) and gsid else None, written)


@dataclass(frozen=True, slots=True)
class Job:
    """One event to execute: its id (the store's), its plan, what earlier tries achieved."""

    id: int
    plan: DeliveryPlan
    progress: Progress = Progress()
    person: str = ""  # its ordering key (events.ordering_key); "" outside the delivery workers
    received_at: float = 0.0  # when ingest stored it (unix seconds); 0 outside the workers


@dataclass(frozen=True, slots=True)
class Fate:
    """How one event ended this try."""

    outcome: Outcome
    call: Call | None = None  # the call that decided it
    error: GainsightError | None = None
    progress: Progress = Progress()
    retry_at: float | None = None  # deferred: not before (None: as soon as possible)
    reason: str | None = None  # filtered: why
    note: str | None = None  # why a delivered event's deciding answer is not a success


@dataclass(slots=True)
class Batch:
    """One execution: the tenant, its credentials, and every job's fate so far."""

    scope: str  # the Gainsight tenant (its domain): the key of everything remembered
    credentials: Credentials
    skip_unchanged: bool
    versioned: bool  # job ids are the store's event ids, so they order events as received
    fates: dict[int, Fate] = field(default_factory=dict)
    company_calls: dict[int, Call] = field(default_factory=dict)  # job -> its company's write
    # person -> their last company (None: none), read from the store once per execution and kept
    # up to date as the execution's group events move it (track_company.py)
    last_companies: dict[str, str | None] = field(default_factory=dict)

    @property
    def destination(self) -> str:
        return self.credentials.destination


def failed(client: GainsightClient, call: Call) -> Fate:
    """The fate of the events a refused or failed call carried."""
    error = client.failure(call.answer, call.step)
    return Fate(error.outcome, call, error)


class TrackSink(Protocol):
    """Where one kind of track plan goes (the Events Framework, Timeline, usage counts): its fate
    this try. A throttled or retryable fate holds the person's later events back."""

    async def deliver(self, batch: Batch, job: Job) -> Fate: ...


class Stage:
    """One step of execution (company writes, person runs): what each needs to make its calls."""

    def __init__(
        self,
        client: GainsightClient,
        memory: DeliveryMemory,
        *,
        ttl: float,
        saved: Saved,
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._memory = memory
        self._ttl = ttl  # how long delivered state counts as what Gainsight holds
        self._saved = saved
        self._clock = clock


def changes_nothing(delivered: Mapping[str, Any] | None, record: Mapping[str, Any]) -> bool:
    """Whether writing `record` over the `delivered` state would change nothing (companies: a subset)."""
    if delivered is None:
        return False
    for key, value in record.items():
        if key == "companies":
            if not set(value) <= set(delivered.get("companies", ())):
                return False
        elif key not in delivered or delivered[key] != value:
            return False
    return True
