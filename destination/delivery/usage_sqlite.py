"""Usage counts in the SQLite store; semantics in usage_store.py, SQL in usage_sqlite.sql."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from destination.delivery import sqlfile
from destination.delivery.sqlite_writer import SQLiteWriter
from destination.delivery.usage_store import UsageKey, UsageRow, oldest_day_kept


def _row(found: Sequence[Any]) -> UsageRow:
    company, day, metric, count, written, known, held, written_at = found
    return UsageRow(UsageKey(company, day, metric), count, written, bool(known), bool(held), written_at)


def _key(destination_id: str, key: UsageKey) -> dict[str, Any]:
    return {"destination_id": destination_id, "company": key.company, "day": key.day, "metric": key.metric}


class UsageSQLite:
    """The UsageCounts part of SQLiteStore."""

    _writer: SQLiteWriter
    _usage_q = sqlfile.load("usage_sqlite.sql")

    async def count_usage(self, destination_id: str, message_id: str, key: UsageKey, now: float) -> bool:
        params = {**_key(destination_id, key), "message_id": message_id, "now": now}

        def job(conn: sqlite3.Connection) -> bool:
            if conn.execute(self._usage_q["remember_counted"], params).rowcount != 1:
                return False
            conn.execute(self._usage_q["add_one"], params)
            return True

        return await self._writer.run(job, grouped=True)  # one transaction: both or neither

    async def usage_due(self, destination_id: str, limit: int) -> list[UsageRow]:
        params = {"destination_id": destination_id, "limit": limit}
        return await self._usage_read(
            lambda conn: conn.execute(self._usage_q["usage_due"], params).fetchall()
        )

    async def usage_rows(self, destination_id: str, keys: Sequence[UsageKey]) -> list[UsageRow]:
        def job(conn: sqlite3.Connection) -> list[Any]:
            query = self._usage_q["usage_row"]
            return [r for k in keys if (r := conn.execute(query, _key(destination_id, k)).fetchone())]

        return await self._usage_read(job)

    async def usage_of_day(self, destination_id: str, day: str) -> list[UsageRow]:
        params = {"destination_id": destination_id, "day": day}
        return await self._usage_read(
            lambda conn: conn.execute(self._usage_q["usage_of_day"], params).fetchall()
        )

    async def _usage_read(self, job: Any) -> list[UsageRow]:
        return [_row(found) for found in await self._writer.run(job, writes=False)]

    async def usage_written(
        self, destination_id: str, written: Sequence[tuple[UsageKey, int]], now: float
    ) -> None:
        rows = [{**_key(destination_id, k), "count": n, "now": now} for k, n in written]
        await self._usage_write("usage_written", rows)

    async def usage_found(self, destination_id: str, keys: Sequence[UsageKey]) -> None:
        await self._usage_write("usage_found", [_key(destination_id, k) for k in keys])

    async def usage_held(self, destination_id: str, keys: Sequence[UsageKey], held: bool) -> None:
        await self._usage_write("usage_held", [{**_key(destination_id, k), "held": int(held)} for k in keys])

    async def _usage_write(self, name: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self._writer.run(lambda conn: conn.executemany(self._usage_q[name], rows).rowcount)

    async def last_usage_write(self, destination_id: str) -> float | None:
        params = {"destination_id": destination_id}
        found = await self._writer.run(
            lambda conn: conn.execute(self._usage_q["last_usage_write"], params).fetchone(), writes=False
        )
        return None if found is None or found[0] is None else float(found[0])

    async def _prune_usage(self, now: float, counted_before: float) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(self._usage_q["prune_usage_counted"], {"counted_before": counted_before})
            conn.execute(self._usage_q["prune_usage_rows"], {"oldest_day": oldest_day_kept(now)})

        await self._writer.run(job)
