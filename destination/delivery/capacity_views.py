"""What the store tells the capacity forecast (DESIGN §6), per destination: measured facts only.

Each read is bounded and runs on an index: arrivals on `seen_messages` by `seen_at` (every stored
event has its row there, `seen_at` = its receipt), finished events on `events_finished`, queued
events on the person heads, calls spent on the rate windows' key. The event name and the person's
kind are read from at most `limit` events (the newest), so a large backlog costs no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

ANONYMOUS_PREFIX = "anonymousId:"
"""The ordering key of a person known only by anonymousId (events.ordering_key)."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """Events of one (type, event name) among the newest arrivals looked at."""

    kind: str
    event: str | None  # a track's name (None: not a track, or no text name)
    events: int
    anonymous: int  # of them, events of people known only by anonymousId


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Events stored (duplicates excluded) since a time, and the mix of the newest of them."""

    total: int
    sample: tuple[Arrival, ...]  # the newest `limit` of them, by (type, event name)


@dataclass(frozen=True, slots=True)
class CallCost:
    """What finished events of one (type, event name) cost: the calls their attempts rode on, a
    call shared by n events (a Person upsert of a run, a Company write) counting 1/n for each."""

    kind: str
    event: str | None
    events: int
    calls: float


class CapacityViews(Protocol):
    """The store's reads for the capacity forecast and the /status charts."""

    async def arrivals(self, destination_id: str, since: float, limit: int) -> Arrivals:
        """Events of the destination stored at or after `since`; the mix of the newest `limit`."""
        ...

    async def call_costs(self, destination_id: str, since: float, limit: int) -> list[CallCost]:
        """What the newest `limit` events of the destination finished at or after `since` cost."""
        ...

    async def arrival_histogram(
        self, destination_id: str, since: float, bucket_seconds: float
    ) -> dict[int, int]:
        """{bucket: n} of the destination's events stored at or after `since` (buckets as below)."""
        ...

    async def oldest_unfinished(self, destination_id: str) -> float | None:
        """When the oldest queued (or leased) event of the destination was received; None: none."""
        ...

    async def finished_histogram(
        self, destination_id: str, since: float, bucket_seconds: float
    ) -> dict[tuple[int, str], int]:
        """{(bucket, state): n} of the destination's events finished at or after `since`, bucket
        k covering [since + k*bucket_seconds, since + (k+1)*bucket_seconds)."""
        ...

    async def calls_history(self, tenant_key: str, window_name: str, since: float) -> dict[float, int]:
        """{window start: calls} the governor counted for the tenant in its `window_name` windows
        starting at or after `since` (windows with no call left out)."""
        ...


class SQLCapacity:
    """CapacityViews for the SQL backends: the named queries are each backend's (its
    `<backend>_capacity.sql`, with the same names and columns); reading rows is `_read`."""

    async def _read(self, name: str, params: dict[str, Any]) -> list[Any]:
        raise NotImplementedError  # each SQL backend's own

    async def arrivals(self, destination_id: str, since: float, limit: int) -> Arrivals:
        params = {"destination_id": destination_id, "since": since, "limit": max(limit, 0)}
        total = (await self._read("arrivals_total", params))[0][0]
        rows = await self._read("arrivals_sample", params)
        return Arrivals(int(total), tuple(Arrival(k, e, int(n), int(a or 0)) for k, e, n, a in rows))

    async def call_costs(self, destination_id: str, since: float, limit: int) -> list[CallCost]:
        params = {"destination_id": destination_id, "since": since, "limit": max(limit, 0)}
        rows = await self._read("call_costs", params)
        return [CallCost(kind, name, int(n), float(calls)) for kind, name, n, calls in rows]

    async def arrival_histogram(
        self, destination_id: str, since: float, bucket_seconds: float
    ) -> dict[int, int]:
        params = {"destination_id": destination_id, "since": since, "bucket": bucket_seconds}
        return {int(bucket): int(n) for bucket, n in await self._read("arrival_histogram", params)}

    async def oldest_unfinished(self, destination_id: str) -> float | None:
        rows = await self._read("oldest_unfinished", {"destination_id": destination_id})
        return None if rows[0][0] is None else float(rows[0][0])

    async def finished_histogram(
        self, destination_id: str, since: float, bucket_seconds: float
    ) -> dict[tuple[int, str], int]:
        params = {"destination_id": destination_id, "since": since, "bucket": bucket_seconds}
        rows = await self._read("finished_histogram", params)
        return {(int(bucket), state): int(n) for bucket, state, n in rows}

    async def calls_history(self, tenant_key: str, window_name: str, since: float) -> dict[float, int]:
        params = {"tenant_key": tenant_key, "window_name": window_name, "since": since}
        rows = await self._read("calls_history", params)
        return {float(start): int(calls) for start, calls in rows}
