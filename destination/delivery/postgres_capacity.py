"""The PostgreSQL store's reads for the capacity forecast (capacity_views.py; SQL in
postgres_capacity.sql)."""

from __future__ import annotations

from typing import Any

from destination.delivery import sqlfile
from destination.delivery.capacity_views import SQLCapacity
from destination.delivery.postgres_connections import PostgresConnections


class PostgresCapacity(PostgresConnections, SQLCapacity):
    async def _read(self, name: str, params: dict[str, Any]) -> list[Any]:
        async with self._tx() as conn:
            return await (await conn.execute(_Q[name], params)).fetchall()


_Q = sqlfile.load("postgres_capacity.sql")
