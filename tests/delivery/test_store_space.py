"""The SQLite store gives space back: pruned rows shrink the file, a full disk leaves no log behind
to refill freed space, and files of an older schema are converted once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from destination.delivery import migrations
from destination.delivery.sqlite import MIGRATIONS, SQLiteStore
from destination.delivery.store import Attempt, NewEvent, StoreFullError
from tests.delivery.conftest import T0, claim_events

pytestmark = pytest.mark.anyio

WINDOW = 100.0
PAYLOAD = b'{"type":"track","properties":{"text":"' + b"x" * 4000 + b'"}}'
REQUEST = {"method": "POST", "url": "https://x/v1.0/api/eventManager/event", "body": "y" * 4000}


def on_disk(path: Path) -> int:
    """The store's bytes on disk: the database file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def auto_vacuum(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])


async def fill_and_deliver(store: SQLiteStore, events: int) -> None:
    for start in range(0, events, 500):
        batch = [
            NewEvent("acme", f"m{i}", f"person{i}", "track", PAYLOAD, T0) for i in range(start, start + 500)
        ]
        await store.enqueue(batch)
    while claimed := await claim_events(store, T0, 1000):
        for queued in claimed:
            attempt = Attempt(T0, "delivered", 200, request=REQUEST, call="c")
            assert await store.complete(queued.id, "delivered", lease=queued.lease, attempt=attempt)


async def test_the_file_shrinks_once_pruning_empties_it(tmp_path: Path) -> None:
    path = tmp_path / "gsd.sqlite3"
    store = SQLiteStore(path, dedupe_window_seconds=WINDOW)
    try:
        await fill_and_deliver(store, 2000)  # about 8 MB of payloads
        full = on_disk(path)
        assert full > 8_000_000
        assert await store.prune(T0 + WINDOW + 1) == 2000
        emptied = on_disk(path)
    finally:
        await store.close()
    assert emptied < full / 10, (full, emptied)


async def test_a_full_disk_truncates_the_log_and_the_writer_recovers_once_there_is_room(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gsd.sqlite3"
    wal = path.with_name(path.name + "-wal")
    store = SQLiteStore(path)
    try:
        await store.enqueue([NewEvent("acme", f"a{i}", f"p{i}", "track", PAYLOAD, T0) for i in range(1500)])
        assert wal.stat().st_size > 4_000_000  # the log keeps the size of its largest burst

        def cap(pages: int | None) -> Callable[[sqlite3.Connection], None]:
            """SQLite answers SQLITE_FULL ("disk full") past `pages` more pages; None: no cap."""

            def job(conn: sqlite3.Connection) -> None:
                (count,) = conn.execute("PRAGMA page_count").fetchone()
                conn.execute(f"PRAGMA max_page_count = {count + pages if pages is not None else 2**30}")

            return job

        await store._writer.run(cap(0), writes=False)
        more = [NewEvent("acme", f"b{i}", f"p{i}", "track", PAYLOAD, T0) for i in range(500)]
        with pytest.raises(StoreFullError):
            await store.enqueue(more)
        assert wal.stat().st_size == 0  # its space went back: nothing for a later checkpoint to refill

        await store._writer.run(cap(None), writes=False)  # room again
        assert await store.enqueue(more) == [True] * 500
    finally:
        await store.close()


async def test_a_file_of_an_older_schema_is_converted_to_give_space_back(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    steps = migrations.steps(MIGRATIONS)
    conn = sqlite3.connect(path, isolation_level=None)
    before_step = next(s.version for s in steps if "auto_vacuum" in s.sql.lower()) - 1
    migrations.migrate_sqlite(conn, steps, target=before_step)
    conn.close()
    assert auto_vacuum(path) == 0  # NONE: freed pages stay in the file

    store = SQLiteStore(path)
    await store.enqueue([NewEvent("acme", "m1", "p", "track", PAYLOAD, T0)])
    await store.close()
    assert auto_vacuum(path) == 2  # INCREMENTAL
    fresh = SQLiteStore(tmp_path / "new.sqlite3")
    await fresh.close()
    assert auto_vacuum(tmp_path / "new.sqlite3") == 2
