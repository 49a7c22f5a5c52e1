"""The memory store's reads for the capacity forecast (capacity_views.py)."""

from __future__ import annotations

import math
from collections import Counter

from destination import jsonutil
from destination.delivery.capacity_views import ANONYMOUS_PREFIX, Arrival, Arrivals, CallCost
from destination.delivery.memory_tables import Row, TablesHandle


class MemoryCapacity(TablesHandle):
    async def arrivals(self, destination_id: str, since: float, limit: int) -> Arrivals:
        with self._open():
            seen = sorted(
                (at, message_id)
                for (destination, message_id), at in self._t.seen.items()
                if destination == destination_id and at >= since
            )
            newest = {(message_id, at) for at, message_id in seen[len(seen) - max(limit, 0) :]}
            rows = [
                row
                for row in self._t.rows.values()
                if row.event.destination_id == destination_id
                and (row.event.message_id, row.event.received_at) in newest
            ]
            events: Counter[tuple[str, str | None]] = Counter()
            anonymous: Counter[tuple[str, str | None]] = Counter()
            for row in rows:
                key = (row.event.kind, _track_name(row))
                events[key] += 1
                anonymous[key] += row.event.ordering_key.startswith(ANONYMOUS_PREFIX)
            sample = tuple(
                Arrival(kind, name, n, anonymous[kind, name]) for (kind, name), n in events.items()
            )
            return Arrivals(len(seen), sample)

    async def call_costs(self, destination_id: str, since: float, limit: int) -> list[CallCost]:
        with self._open():
            finished = sorted(
                (
                    row
                    for row in self._t.rows.values()
                    if row.event.destination_id == destination_id
                    and row.finished_at is not None
                    and row.finished_at >= since
                ),
                key=lambda row: -(row.finished_at or 0.0),
            )[: max(limit, 0)]
            riders = Counter(a.call for row in finished for a in row.history if a.call is not None)
            events: Counter[tuple[str, str | None]] = Counter()
            calls: dict[tuple[str, str | None], float] = {}
            for row in finished:
                key = (row.event.kind, _track_name(row))
                events[key] += 1
                spent = sum(1.0 / riders[a.call] for a in row.history if a.call is not None)
                calls[key] = calls.get(key, 0.0) + spent
            return [CallCost(kind, name, n, calls[kind, name]) for (kind, name), n in events.items()]

    async def arrival_histogram(
        self, destination_id: str, since: float, bucket_seconds: float
    ) -> dict[int, int]:
        with self._open():
            found: Counter[int] = Counter(
                math.floor((at - since) / bucket_seconds)
                for (destination, _), at in self._t.seen.items()
                if destination == destination_id and at >= since
            )
            return dict(found)

    async def oldest_unfinished(self, destination_id: str) -> float | None:
        with self._open():
            received = [
                self._t.rows[ids[0]].event.received_at
                for (destination, _), ids in self._t.unfinished.items()
                if destination == destination_id and ids
            ]
            return min(received, default=None)

    async def finished_histogram(
        self, destination_id: str, since: float, bucket_seconds: float
    ) -> dict[tuple[int, str], int]:
        with self._open():
            found: Counter[tuple[int, str]] = Counter()
            for row in self._t.rows.values():
                at = row.finished_at
                if row.event.destination_id == destination_id and at is not None and at >= since:
                    found[math.floor((at - since) / bucket_seconds), row.state] += 1
            return dict(found)

    async def calls_history(self, tenant_key: str, window_name: str, since: float) -> dict[float, int]:
        with self._open():
            return {
                start: calls
                for (tenant, name, start), calls in self._t.windows.items()
                if tenant == tenant_key and name == window_name and start >= since and calls
            }


def _track_name(row: Row) -> str | None:
    if row.event.kind != "track":
        return None
    try:
        name = jsonutil.loads(row.event.payload).get("event")
    except (jsonutil.JSONDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None
