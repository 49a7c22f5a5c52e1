"""The SQLite store's reads for the capacity forecast (capacity_views.py; SQL in
sqlite_capacity.sql). They run on the store's second (read-only) connection, beside the writer,
so that /status and /metrics never hold up ingest and delivery while they read."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from destination.delivery import sqlfile
from destination.delivery.capacity_views import Arrival, Arrivals, CallCost
from destination.delivery.sqlite_writer import SQLiteWriter


class SQLiteCapacity:
    _scans: Callable[[], SQLiteWriter]  # SQLiteViews': the second connection, opened when first needed

    async def arrivals(self, destination_id: str, since: float, limit: int) -> Arrivals:
        params = {"destination_id": destination_id, "since": since, "limit": max(limit, 0)}

        def job(conn: sqlite3.Connection) -> Arrivals:
            total = conn.execute(_Q["arrivals_total"], params).fetchone()[0]
            rows = conn.execute(_Q["arrivals_sample"], params).fetchall()
            return Arrivals(int(total), tuple(Arrival(k, e, int(n), int(a or 0)) for k, e, n, a in rows))

        return await self._scans().run(job, writes=False)

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

    async def _read(self, name: str, params: dict[str, Any]) -> list[Any]:
        return await self._scans().run(lambda conn: conn.execute(_Q[name], params).fetchall(), writes=False)


_Q = sqlfile.load("sqlite_capacity.sql")
