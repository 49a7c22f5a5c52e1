"""The SQLite store's inspection, dead-letter administration and read-only views."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from destination import jsonutil
from destination.delivery import rows as rowmap
from destination.delivery.sqlite_writer import SQLiteWriter
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


def json_ids(ids: list[int]) -> str:
    """Ids as JSON text for json_each (SQLite's JSON functions refuse BLOBs)."""
    return jsonutil.dumps(ids).decode()


class SQLiteViews(EventLookups):
    """EventAdmin (and the budget read) of the SQLite store; see store.py. Reads run on the
    store's writer thread, or beside it on a second connection for scans of every event."""

    path: Path
    _q: dict[str, str]
    _writer: SQLiteWriter
    _scanner: SQLiteWriter | None

    async def get_event(self, event_id: int) -> StoredEvent | None:
        if not storable_id(event_id):
            return None

        def job(conn: sqlite3.Connection) -> StoredEvent | None:
            row = conn.execute(self._q["get_event"], {"id": event_id}).fetchone()
            if row is None:
                return None
            history = conn.execute(self._q["event_history"], {"event_id": event_id}).fetchall()
            return rowmap.stored_event(row, history, rowmap.loads_or_none)

        return await self._writer.run(job, writes=False)

    async def list_dead_letters(
        self, destination_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        if limit <= 0:
            return []
        params = {
            "destination_id": destination_id,
            "limit": page_bound(limit),
            "offset": page_bound(offset),
        }

        def job(conn: sqlite3.Connection) -> list[DeadLetter]:
            rows = conn.execute(self._q["list_dead_letters"], params).fetchall()
            return [DeadLetter(*row) for row in rows]

        return await self._writer.run(job, writes=False)

    async def replay_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        def job(conn: sqlite3.Connection) -> int:
            chosen = self._select_dead_letters(conn, ids, destination_id, with_rejected=True)
            if not chosen:
                return 0
            people = conn.execute(self._q["requeue_dead_letters"], {"ids": chosen}).fetchall()
            for destination, key in set(people):
                conn.execute(
                    self._q["reset_person_head"],
                    {"destination_id": destination, "ordering_key": key},
                )
            return len(people)

        return await self._writer.run(job)

    async def purge_dead_letters(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None
    ) -> int:
        def job(conn: sqlite3.Connection) -> int:
            chosen = self._select_dead_letters(conn, ids, destination_id)
            if not chosen:
                return 0
            conn.execute(self._q["delete_attempts_of"], {"ids": chosen})
            return conn.execute(self._q["delete_events"], {"ids": chosen}).rowcount

        return await self._writer.run(job)

    def _select_dead_letters(
        self,
        conn: sqlite3.Connection,
        ids: Sequence[int] | None,
        destination_id: str | None,
        *,
        with_rejected: bool = False,
    ) -> str | None:
        """The matching dead letters' ids as a JSON array (for json_each), None if there are none."""
        params = {
            "ids": None if ids is None else json_ids([int(i) for i in ids if storable_id(int(i))]),
            "destination_id": destination_id,
            "with_rejected": with_rejected,
        }
        found = [row[0] for row in conn.execute(self._q["select_dead_letters"], params)]
        return json_ids(found) if found else None

    async def counts(self) -> dict[EventState, int]:
        def job(conn: sqlite3.Connection) -> dict[EventState, int]:
            found = dict(conn.execute(self._q["state_counts"]).fetchall())
            return {state: int(found.get(state, 0)) for state in EVENT_STATES}

        return await self._writer.run(job, writes=False)

    async def find_events(self, message_id: str, destination_id: str | None = None) -> list[StoredEvent]:
        params = {"message_id": message_id, "destination_id": destination_id}

        def job(conn: sqlite3.Connection) -> list[StoredEvent]:
            found = []
            for (event_id,) in conn.execute(self._q["events_by_message"], params).fetchall():
                row = conn.execute(self._q["get_event"], {"id": event_id}).fetchone()
                history = conn.execute(self._q["event_history"], {"event_id": event_id}).fetchall()
                found.append(rowmap.stored_event(row, history, rowmap.loads_or_none))
            return found

        return await self._writer.run(job, writes=False)

    async def _list_events(
        self, destination_id: str | None, state: str | None, limit: int, offset: int, user: str | None
    ) -> list[EventSummary]:
        params = event_filters(destination_id, state, limit, offset, user)

        def job(conn: sqlite3.Connection) -> list[EventSummary]:
            return [EventSummary(*row) for row in conn.execute(self._q["list_events"], params)]

        # A user is looked for in every payload: on the scans connection, beside the writer.
        return await (self._writer if user is None else self._scans()).run(job, writes=False)

    def _scans(self) -> SQLiteWriter:
        """A second connection, opened when first needed, for reads that walk every event: WAL
        lets them run beside the writer, so ingest and delivery do not wait for them."""
        if self._scanner is None:
            self._scanner = SQLiteWriter(self._connect_reader, name="gsd-sqlite-scans")
        return self._scanner

    def _connect_reader(self) -> sqlite3.Connection:
        """A read-only connection to the file the writer opened (and migrated)."""
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.executescript(self._q["configure_connection"] + "\nPRAGMA query_only = 1;")
        return conn

    async def latest_finished(
        self, destination_id: str, state: str, since: float, limit: int
    ) -> list[EventSummary]:
        params = {"destination_id": destination_id, "state": state, "since": since, "limit": max(limit, 0)}

        def job(conn: sqlite3.Connection) -> list[EventSummary]:
            return [EventSummary(*row) for row in conn.execute(self._q["latest_finished"], params)]

        return await self._writer.run(job, writes=False)

    async def person_head(self, destination_id: str, ordering_key: str) -> EventSummary | None:
        params = {"destination_id": destination_id, "ordering_key": ordering_key}

        def job(conn: sqlite3.Connection) -> EventSummary | None:
            row = conn.execute(self._q["person_head"], params).fetchone()
            return None if row is None else EventSummary(*row)

        return await self._writer.run(job, writes=False)

    async def retry_now(
        self, ids: Sequence[int] | None = None, destination_id: str | None = None, *, now: float
    ) -> int:
        params = {
            "ids": None if ids is None else json_ids([int(i) for i in ids if storable_id(int(i))]),
            "destination_id": destination_id,
            "now": now,
        }
        return await self._writer.run(lambda conn: int(conn.execute(self._q["retry_now"], params).rowcount))

    async def counts_by_destination(self) -> dict[str, dict[str, int]]:
        def job(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            return rowmap.per_destination(conn.execute(self._q["counts_by_destination"]).fetchall())

        return await self._writer.run(job, writes=False)

    async def finished_counts(self, since: float) -> dict[str, dict[str, int]]:
        def job(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            return rowmap.per_destination(
                conn.execute(self._q["finished_counts"], {"since": since}).fetchall()
            )

        return await self._writer.run(job, writes=False)

    async def recent_attempts(
        self, destination_id: str | None = None, limit: int = 20, *, failed_only: bool = False
    ) -> list[AttemptRecord]:
        if limit <= 0:
            return []
        params = {
            "destination_id": destination_id,
            "limit": limit,
            "failed": int(failed_only),
            "scan": RECENT_ATTEMPTS_SCAN,
        }

        def job(conn: sqlite3.Connection) -> list[AttemptRecord]:
            return [
                AttemptRecord(
                    row[0], row[1], row[2], row[3], rowmap.attempt(row[4:11], rowmap.loads_or_none), row[11]
                )
                for row in conn.execute(self._q["recent_attempts"], params)
            ]

        return await self._writer.run(job, writes=False)

    async def budget_used(self, tenant_key: str, windows: Sequence[tuple[str, float]]) -> dict[str, int]:
        def job(conn: sqlite3.Connection) -> dict[str, int]:
            used = {}
            for name, start in windows:
                key = {"tenant_key": tenant_key, "window_name": name, "window_start": start}
                row = conn.execute(self._q["window_calls"], key).fetchone()
                used[name] = int(row[0]) if row else 0
            return used

        return await self._writer.run(job, writes=False)
