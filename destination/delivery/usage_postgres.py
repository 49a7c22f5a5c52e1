"""Usage counts in the PostgreSQL store, shared by replicas; semantics in usage_store.py, SQL in
usage_postgres.sql."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from destination.delivery import sqlfile
from destination.delivery.postgres_connections import PostgresConnections
from destination.delivery.usage_store import UsageKey, UsageRow, oldest_day_kept


def _row(found: Sequence[Any]) -> UsageRow:
    company, day, metric, count, written, known, held, written_at = found
    return UsageRow(UsageKey(company, day, metric), int(count), int(written), known, held, written_at)


def _keys(destination_id: str, keys: Sequence[UsageKey]) -> dict[str, Any]:
    return {
        "destination_id": destination_id,
        "companies": [k.company for k in keys],
        "days": [k.day for k in keys],
        "metrics": [k.metric for k in keys],
    }


class UsagePostgres(PostgresConnections):
    """The UsageCounts part of PostgresStore."""

    _usage_q = sqlfile.load("usage_postgres.sql")

    async def count_usage(self, destination_id: str, message_id: str, key: UsageKey, now: float) -> bool:
        params = {
            "destination_id": destination_id,
            "message_id": message_id,
            "now": now,
            "company": key.company,
            "day": key.day,
            "metric": key.metric,
        }
        async with self._tx() as conn:
            return await (await conn.execute(self._usage_q["count_usage"], params)).fetchone() is not None

    async def _usage_rows(self, name: str, params: dict[str, Any]) -> list[UsageRow]:
        async with self._tx() as conn:
            return [
                _row(found) for found in await (await conn.execute(self._usage_q[name], params)).fetchall()
            ]

    async def usage_due(self, destination_id: str, limit: int) -> list[UsageRow]:
        return await self._usage_rows("usage_due", {"destination_id": destination_id, "limit": limit})

    async def usage_rows(self, destination_id: str, keys: Sequence[UsageKey]) -> list[UsageRow]:
        return await self._usage_rows("usage_rows", _keys(destination_id, keys)) if keys else []

    async def usage_of_day(self, destination_id: str, day: str) -> list[UsageRow]:
        return await self._usage_rows("usage_of_day", {"destination_id": destination_id, "day": day})

    async def _usage_change(self, name: str, params: dict[str, Any]) -> None:
        if params["companies"]:
            async with self._tx() as conn:
                await conn.execute(self._usage_q[name], params)

    async def usage_written(
        self, destination_id: str, written: Sequence[tuple[UsageKey, int]], now: float
    ) -> None:
        params = {**_keys(destination_id, [k for k, _ in written]), "counts": [n for _, n in written]}
        await self._usage_change("usage_written", {**params, "now": now})

    async def usage_found(self, destination_id: str, keys: Sequence[UsageKey]) -> None:
        await self._usage_change("usage_found", _keys(destination_id, keys))

    async def usage_held(self, destination_id: str, keys: Sequence[UsageKey], held: bool) -> None:
        await self._usage_change("usage_held", {**_keys(destination_id, keys), "held": held})

    async def last_usage_write(self, destination_id: str) -> float | None:
        async with self._tx() as conn:
            found = await (
                await conn.execute(self._usage_q["last_usage_write"], {"destination_id": destination_id})
            ).fetchone()
        return None if found is None or found[0] is None else float(found[0])

    async def _prune_usage(self, now: float, counted_before: float) -> None:
        async with self._tx() as conn:
            await conn.execute(self._usage_q["prune_usage_counted"], {"counted_before": counted_before})
            await conn.execute(self._usage_q["prune_usage_rows"], {"oldest_day": oldest_day_kept(now)})
