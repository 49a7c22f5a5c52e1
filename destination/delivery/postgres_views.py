"""The PostgreSQL store's inspection, dead-letter administration and read-only views."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from destination.delivery import rows as rowmap
from destination.delivery.postgres_connections import (
    PostgresConnections,
    people_lists,
)
from destination.delivery.store import (
    EVENT_STATES,
    AttemptRecord,
    DeadLetter,
    EventState,
    EventSummary,
    StoredEvent,
)
from destination.delivery.store_base import (
    RECENT_ATTEMPTS_SCAN,
    EventLookups,
    event_filters,
    page_bound,
    storable_id,
)


class PostgresViews(PostgresConnections, EventLookups):
    """EventAdmin (and the budget read) of the PostgreSQL store; see store.py."""

    async def get_event(self, event_id: int) -> StoredEvent | None:
        if not storable_id(event_id):
            return None
        async with self._tx() as conn:
            row = await (await conn.execute(self._q["get_event"], {"id": event_id})).fetchone()
            if row is None:
                return None
            history = await (await conn.execute(self._q["event_history"], {"event_id": event_id})).fetchall()
        return rowmap.stored_event(row, history, rowmap.as_is)

    async def list_dead_letters(
        self, destination_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        if limit <= 0:
            return []
        params = {"destination_id": destination_id, "limit": page_bound(limit), "offset": page_bound(offset)}
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["list_dead_letters"], params)).fetchall()
        return [DeadLetter(*row) for row in rows]

    def _selection(self, ids: Sequence[int] | None, destination_id: str | None) -> dict[str, Any]:
        return {
            "ids": None if ids is None else [int(i) for i in ids if storable_id(int(i))],
            "destination_id": destination_id,
        }

    async def replay_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        params = self._selection(ids, destination_id)
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["dead_letter_people"], params)).fetchall()
            people = sorted((d, p) for d, p in rows)
            if not people:
                return 0
            await self._lock_people(conn, people)
            replayed = await (await conn.execute(self._q["requeue_dead_letters"], params)).fetchall()
            await conn.execute(self._q["reset_heads"], people_lists(people))
            await conn.execute(self._q["elect_heads"], people_lists(people))
        return len(replayed)

    async def purge_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        async with self._tx() as conn:
            row = await (
                await conn.execute(self._q["purge_dead_letters"], self._selection(ids, destination_id))
            ).fetchone()
        return int(row[0]) if row else 0

    async def counts(self) -> dict[EventState, int]:
        async with self._tx() as conn:
            found = dict(await (await conn.execute(self._q["state_counts"])).fetchall())
        return {state: int(found.get(state) or 0) for state in EVENT_STATES}

    async def find_events(self, message_id: str, destination_id: str | None = None) -> list[StoredEvent]:
        params = {"message_id": message_id, "destination_id": destination_id}
        async with self._tx() as conn:
            ids = [
                row[0] for row in await (await conn.execute(self._q["events_by_message"], params)).fetchall()
            ]
            found = []
            for event_id in ids:
                row = await (await conn.execute(self._q["get_event"], {"id": event_id})).fetchone()
                history = await (
                    await conn.execute(self._q["event_history"], {"event_id": event_id})
                ).fetchall()
                if row is not None:
                    found.append(rowmap.stored_event(row, history, rowmap.as_is))
        return found

    async def _list_events(
        self, destination_id: str | None, state: str | None, limit: int, offset: int, user: str | None
    ) -> list[EventSummary]:
        params = event_filters(destination_id, state, limit, offset, user)
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["list_events"], params)).fetchall()
        return [EventSummary(*row) for row in rows]

    async def latest_finished(
        self, destination_id: str, state: str, since: float, limit: int
    ) -> list[EventSummary]:
        params = {
            "destination_id": destination_id,
            "state": state,
            "since": since,
            "limit": page_bound(limit),
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["latest_finished"], params)).fetchall()
        return [EventSummary(*row) for row in rows]

    async def person_head(self, destination_id: str, ordering_key: str) -> EventSummary | None:
        params = {"destination_id": destination_id, "ordering_key": ordering_key}
        async with self._tx() as conn:
            row = await (await conn.execute(self._q["person_head"], params)).fetchone()
        return None if row is None else EventSummary(*row)

    async def retry_now(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None, *, now: float
    ) -> int:
        params = {**self._selection(ids, destination_id), "now": now}
        async with self._tx() as conn:
            return (await conn.execute(self._q["retry_now"], params)).rowcount

    async def counts_by_destination(self) -> dict[str, dict[str, int]]:
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["counts_by_destination"])).fetchall()
        return rowmap.per_destination(rows)

    async def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["finished_counts"], {"since": since})).fetchall()
        return rowmap.per_destination(rows)

    async def recent_attempts(
        self, destination_id: str | None = None, limit: int = 20, *, failed_only: bool = False
    ) -> list[AttemptRecord]:
        if limit <= 0:
            return []
        params = {
            "destination_id": destination_id,
            "limit": page_bound(limit),
            "failed": failed_only,
            "scan": RECENT_ATTEMPTS_SCAN,
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["recent_attempts"], params)).fetchall()
        return [
            AttemptRecord(r[0], r[1], r[2], r[3], rowmap.attempt(r[4:11], rowmap.as_is), r[11]) for r in rows
        ]

    async def budget_used(self, tenant_key: str, windows: Sequence[tuple[str, float]]) -> dict[str, int]:
        params = {
            "tenant_key": tenant_key,
            "names": [name for name, _ in windows],
            "starts": [start for _, start in windows],
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["budget_used"], params)).fetchall()
        return {name: int(calls) for name, calls in rows}
