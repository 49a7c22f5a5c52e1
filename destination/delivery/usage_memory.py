"""Usage counts in the in-memory store (the unit-test double); semantics in usage_store.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from destination.delivery.memory_tables import TablesHandle
from destination.delivery.usage_store import UsageKey, UsageRow, oldest_day_kept


class UsageMemory(TablesHandle):
    """The UsageCounts part of MemoryStore."""

    async def count_usage(self, destination_id: str, message_id: str, key: UsageKey, now: float) -> bool:
        with self._open():
            usage = self._t.usage
            if (destination_id, message_id) in usage.counted:
                return False
            usage.counted[(destination_id, message_id)] = now
            row = usage.rows.get((destination_id, key)) or UsageRow(key, 0, 0, False, False, None)
            usage.rows[(destination_id, key)] = replace(row, count=row.count + 1)
            return True

    async def usage_due(self, destination_id: str, limit: int) -> list[UsageRow]:
        with self._open():
            due = [r for (d, _), r in self._t.usage.rows.items() if d == destination_id and r.due]
        return sorted(due, key=lambda r: (r.key.day, r.key.company, r.key.metric))[:limit]

    async def usage_rows(self, destination_id: str, keys: Sequence[UsageKey]) -> list[UsageRow]:
        with self._open():
            return [r for k in keys if (r := self._t.usage.rows.get((destination_id, k))) is not None]

    async def usage_of_day(self, destination_id: str, day: str) -> list[UsageRow]:
        with self._open():
            rows = [r for (d, k), r in self._t.usage.rows.items() if d == destination_id and k.day == day]
        return sorted(rows, key=lambda r: (r.key.metric, r.key.company))

    async def usage_written(
        self, destination_id: str, written: Sequence[tuple[UsageKey, int]], now: float
    ) -> None:
        with self._open():
            rows = self._t.usage.rows
            for key, count in written:
                row = rows.get((destination_id, key))
                if row is not None:
                    rows[(destination_id, key)] = replace(
                        row, written=count, known=True, held=False, written_at=now
                    )

    async def usage_found(self, destination_id: str, keys: Sequence[UsageKey]) -> None:
        self._usage_change(destination_id, keys, known=True)

    async def usage_held(self, destination_id: str, keys: Sequence[UsageKey], held: bool) -> None:
        self._usage_change(destination_id, keys, held=held)

    def _usage_change(self, destination_id: str, keys: Sequence[UsageKey], **changes: bool) -> None:
        with self._open():
            rows = self._t.usage.rows
            for key in keys:
                row = rows.get((destination_id, key))
                if row is not None:
                    rows[(destination_id, key)] = replace(row, **changes)  # type: ignore[arg-type]

    async def last_usage_write(self, destination_id: str) -> float | None:
        with self._open():
            times = [
                r.written_at
                for (d, _), r in self._t.usage.rows.items()
                if d == destination_id and r.written_at is not None
            ]
        return max(times, default=None)

    def _prune_usage(self, now: float, counted_before: float) -> None:
        """Called by prune under the tables' lock."""
        usage = self._t.usage
        usage.counted = {k: at for k, at in usage.counted.items() if at >= counted_before}
        oldest = oldest_day_kept(now)
        usage.rows = {k: r for k, r in usage.rows.items() if r.key.day >= oldest}
