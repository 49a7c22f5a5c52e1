"""The SQLite store's reads for the capacity forecast (capacity_views.py; SQL in
sqlite_capacity.sql). They run on the store's second (read-only) connection, beside the writer,
so that /status and /metrics never hold up ingest and delivery while they read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from destination.delivery import sqlfile
from destination.delivery.capacity_views import SQLCapacity
from destination.delivery.sqlite_writer import SQLiteWriter


class SQLiteCapacity(SQLCapacity):
    _scans: Callable[[], SQLiteWriter]  # SQLiteViews': the second connection, opened when first needed

    async def _read(self, name: str, params: dict[str, Any]) -> list[Any]:
        return await self._scans().run(lambda conn: conn.execute(_Q[name], params).fetchall(), writes=False)


_Q = sqlfile.load("sqlite_capacity.sql")
