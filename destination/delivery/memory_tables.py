"""The in-memory store's data (rows, queues, memories) and the handle that guards it: what the
memory store's parts share."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from destination import jsonutil
from destination.delivery.holds import Holds
from destination.delivery.store import (
    Attempt,
    EventState,
    NewEvent,
    StoreClosedError,
)
from destination.delivery.usage_store import UsageKey, UsageRow

PersonKey = tuple[str, str]  # (destination_id, ordering_key)


@dataclass(slots=True)
class Row:
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

    def fields(self) -> dict[str, Any]:
        """What a QueuedEvent and a StoredEvent both show of the row (progress as a fresh copy)."""
        e = self.event
        return {
            "id": self.id,
            "destination_id": e.destination_id,
            "message_id": e.message_id,
            "ordering_key": e.ordering_key,
            "kind": e.kind,
            "payload": e.payload,
            "received_at": e.received_at,
            "attempts": self.attempts,
            "progress": json_copy(self.progress),
            "replayed_at_attempt": self.replayed_at_attempt,
        }


def json_copy(value: Any) -> Any:
    """What a JSON column would give back: a fresh copy, and an error if it is not JSON."""
    return None if value is None else jsonutil.loads(jsonutil.dumps(value))


@dataclass
class UsageTables:
    """Usage counts (usage_memory.py): counted messageIds and the rows."""

    counted: dict[tuple[str, str], float] = field(default_factory=dict)  # (destination, messageId)
    rows: dict[tuple[str, UsageKey], UsageRow] = field(default_factory=dict)


@dataclass
class Tables:
    """The store's data: what two handles on one memory store (two "replicas") share."""

    holds: Holds = field(default_factory=Holds)
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows: dict[int, Row] = field(default_factory=dict)
    unfinished: dict[PersonKey, list[int]] = field(default_factory=dict)  # queued/leased ids, ascending
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    windows: dict[tuple[str, str, float], int] = field(default_factory=dict)
    gsids: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # (gsid, learnt_at)
    # (destination, person) -> (company gsid, associated_at, the group event's id)
    last_companies: dict[tuple[str, str], tuple[str, float, int]] = field(default_factory=dict)
    states: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    usage: UsageTables = field(default_factory=UsageTables)
    last_id: int = 0
    recorded: list[tuple[int, int]] = field(default_factory=list)  # (event id, history index)


class TablesHandle:
    """A handle on the tables: every access goes through `_open`, under the tables' lock."""

    _t: Tables
    _closed: bool

    @contextmanager
    def _open(self) -> Iterator[None]:
        with self._t.lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            yield
