"""Schema versions: a store opened on a database of an older schema upgrades it and keeps the queue."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import orjson
import psycopg
import pytest

from destination.delivery import migrations
from destination.delivery.postgres import PostgresStore
from destination.delivery.sqlite import MIGRATIONS, SQLiteStore
from destination.delivery.store import Attempt, Store, StoreError, StoreUnavailableError
from destination.events import ordering_key
from tests.delivery.conftest import T0, claim_events, event

pytestmark = pytest.mark.anyio

SQLITE_STEPS = migrations.steps(MIGRATIONS)
LATEST = SQLITE_STEPS[-1].version

# How the first release wrote events (its insert_event and seen_messages rows), kept verbatim so
# that the test does not depend on today's queries.
V1_INSERT = """
INSERT INTO seen_messages (destination_id, message_id, seen_at) VALUES (?, ?, ?);
INSERT INTO events (destination_id, message_id, ordering_key, kind, payload, received_at, state, head,
    available_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);
"""


def v1_file(path: Path) -> None:
    """A store file exactly as the first schema left it: queued, leased, delivered and dead events."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrations.migrate_sqlite(conn, SQLITE_STEPS, target=1) == 1
        conn.execute("BEGIN")
        rows = [
            ("m1", "ada", "identify", "queued", 1, 100.0),
            ("m2", "ada", "track", "queued", 0, 101.0),
            ("m3", "bob", "group", "leased", 1, 102.0),
            ("m4", "cy", "track", "delivered", 0, None),
            ("m5", "dee", "identify", "dead", 0, None),
        ]
        first, second = (s.strip() for s in V1_INSERT.strip().split(";\n"))
        for mid, person, kind, state, head, available in rows:
            conn.execute(first, ("acme", mid, 100.0))
            conn.execute(
                second.rstrip(";"),
                ("acme", mid, person, kind, b'{"type":"%s"}' % kind.encode(), 100.0, state, head, available),
            )
        conn.execute("UPDATE events SET reason = 'bad', finished_at = 103.0 WHERE message_id = 'm5'")
        conn.execute("COMMIT")
    finally:
        conn.close()


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])


async def test_a_store_written_by_the_first_schema_opens_with_every_event(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    v1_file(path)
    store = SQLiteStore(path)
    try:
        assert version_of(path) == LATEST
        found = [await store.get_event(i) for i in range(1, 6)]
        assert [(e.message_id, e.state) for e in found if e is not None] == [
            ("m1", "queued"),
            ("m2", "queued"),
            ("m3", "leased"),
            ("m4", "delivered"),
            ("m5", "dead"),
        ]
        assert [d.message_id for d in await store.list_dead_letters()] == ["m5"]
        counts = await store.counts()
        assert (counts["queued"], counts["leased"], counts["delivered"], counts["dead"]) == (2, 1, 1, 1)
        # Its messageIds are still known, and its queue still flows in order.
        assert await store.enqueue([event("m1", at=200.0)]) == [False]
        claimed = await claim_events(store, 200.0, 10)
        # The heads with their due events (m2 follows m1); m3's lease has expired.
        assert [e.message_id for e in claimed] == ["m1", "m2", "m3"]
        # What the newer schema added works on the old events: attempts keep request and call.
        request = {"method": "POST", "url": "https://x", "headers": {}, "body": {}}
        attempt = Attempt(201.0, "retryable", 503, request=request, call="c1")
        assert await store.retry_later(1, 201.0, None, lease=claimed[0].lease, attempt=attempt)
        history = (await store.get_event(1)).history  # type: ignore[union-attr]
        assert (history[0].request, history[0].call) == (request, "c1")
        (again, *_) = await claim_events(store, 201.0, 10)
        assert again.id == 1
        assert await store.complete(1, "unchanged", lease=again.lease)
        assert (await store.counts())["unchanged"] == 1
    finally:
        await store.close()


async def test_replicas_starting_together_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        start.wait()
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                migrations.migrate_sqlite(conn, SQLITE_STEPS)
            finally:
                conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert version_of(path) == LATEST
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)


def test_a_database_newer_than_this_build_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate_sqlite(conn, SQLITE_STEPS)
    conn.execute(f"UPDATE schema_version SET version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {LATEST + 1}, newer than this build"):
        SQLiteStore(path)


def test_statements_are_cut_where_they_end_and_a_trigger_stays_whole() -> None:
    script = """
    -- a comment
    CREATE TABLE t (x INTEGER);  -- trailing
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET x = 1;
        UPDATE t SET x = 2;
    END;
    """
    parts = migrations.sqlite_statements(script)
    assert len(parts) == 2 and parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END;")
    with pytest.raises(StoreError, match="unterminated"):
        migrations.sqlite_statements("CREATE TABLE t (x INTEGER)")


def test_steps_are_numbered_without_gaps() -> None:
    assert [step.version for step in SQLITE_STEPS] == list(range(1, LATEST + 1))
    assert migrations.pending(SQLITE_STEPS, LATEST) == []
    assert [s.version for s in migrations.pending(SQLITE_STEPS, 0, target=1)] == [1]


# PostgreSQL: the same promises, with replicas starting together.

PG_LATEST = migrations.steps("postgres_migrations.sql")[-1].version


async def test_postgresql_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url, pool_size=2) for _ in range(5)]
    try:
        answers = await asyncio.gather(*(s.enqueue([event(f"m{i}")]) for i, s in enumerate(stores)))
        assert answers == [[True]] * 5
        assert (await stores[0].counts())["queued"] == 5
    finally:
        for store in stores:
            await store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(PG_LATEST,)]


async def test_a_postgresql_schema_newer_than_this_build_is_refused(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.counts()
    await store.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    store = PostgresStore(postgres_url)
    try:
        # Unavailable, not a bare StoreError: ingest answers 503 with this reason, never a 500.
        with pytest.raises(StoreUnavailableError, match="newer than this build"):
            await store.counts()
    finally:
        await store.close()


async def test_postgresql_step_2_makes_attempts_the_history_counter_with_a_replay_baseline(
    postgres_url: str,
) -> None:
    """Step 1 reset `attempts` on replay; step 2 makes it the history's length and keeps the old
    value's complement as the baseline, so the retry policy's count is unchanged."""
    store = PostgresStore(postgres_url)
    try:
        await store.enqueue([event("a1"), event("b1", "bob")])
        dead = await claim_events(store, T0, 5, 30.0)
        assert len(dead) == 2
        for claimed in dead:
            failed = Attempt(T0, "aborted", 400, "bad")
            assert await store.dead_letter(claimed.id, "bad", lease=claimed.lease, attempt=failed)
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:  # as step 1 left a1: replayed (reset), tried once more
        conn.execute("ALTER TABLE events DROP COLUMN replayed_at_attempt")
        conn.execute("UPDATE schema_version SET version = 1")
        conn.execute(
            "UPDATE events SET state = 'queued', head = true, available_at = 0, attempts = 1,"
            " finished_at = NULL, reason = NULL WHERE message_id = 'a1'"
        )
        conn.execute(
            "INSERT INTO event_attempts (event_id, at, outcome)"
            " SELECT id, 0, 'retryable' FROM events WHERE message_id = 'a1'"
        )
    store = PostgresStore(postgres_url)
    try:
        (a1,) = await store.find_events("a1")
        (b1,) = await store.find_events("b1")
        assert (a1.attempts, a1.replayed_at_attempt, len(a1.history)) == (2, 1, 2)
        assert (b1.attempts, b1.replayed_at_attempt) == (1, 0)
        (claimed,) = await claim_events(store, T0, 5, 30.0)
        assert (claimed.message_id, claimed.attempts_since_replay) == ("a1", 1)
    finally:
        await store.close()


# Per-person order by userId (SQLite v4, PostgreSQL v3): an upgrade re-keys the queue it keeps.

# Events as the release before queued them: keyed by the email first (an identify by its
# traits.email, a group by the company's traits.email), else by the userId.
OLD_KEYED: list[tuple[str, str, str, dict[str, object], str]] = [
    # (messageId, old key, state, payload's ids and traits, kind)
    ("m1", "email:ada@x.com", "queued", {"userId": "u1", "traits": {"email": "ada@x.com"}}, "identify"),
    ("m2", "userId:u1", "queued", {"userId": "u1", "event": "Ticket Closed"}, "track"),
    (
        "m3",
        "email:ada@x.com",
        "queued",
        {"userId": "u1", "traits": {"email": "ada@x.com", "seats": 2}},
        "identify",
    ),
    ("m4", "userId:u1", "queued", {"userId": "u1", "event": "Ticket Closed"}, "track"),
    (
        "m5",
        "email:billing@acme.com",
        "queued",
        {"userId": 42, "traits": {"name": "Acme", "email": "billing@acme.com"}},
        "group",
    ),
    ("m6", "userId:42", "queued", {"userId": 42, "event": "Ticket Closed"}, "track"),
    ("m7", "email:cy@x.com", "leased", {"anonymousId": "a1", "traits": {"email": "cy@x.com"}}, "identify"),
    ("m8", "email:ada@x.com", "dead", {"userId": "u1", "traits": {"email": "ada@x.com"}}, "identify"),
    ("m9", "userId:u1", "delivered", {"userId": "u1", "event": "Ticket Closed"}, "track"),
    ("m10", "anonymousId:a2", "queued", {"anonymousId": "a2", "event": "Ticket Closed"}, "track"),
]
OLD_HEADS = {"m1", "m2", "m5", "m6", "m7", "m10"}  # one per old key
NEW_KEYS = {"m1": "userId:u1", "m5": "userId:42", "m6": "userId:42", "m7": "anonymousId:a1"}


def old_rows() -> list[tuple[object, ...]]:
    rows = []
    for mid, key, state, body, kind in OLD_KEYED:
        payload = orjson.dumps({"type": kind, "messageId": mid, **body})
        unfinished = state in ("queued", "leased")
        rows.append(
            ("acme", mid, key, kind, payload, 100.0, state, mid in OLD_HEADS, 100.0 if unfinished else None)
        )
    return rows


async def delivered_in_order(store: Store) -> list[list[str]]:
    """Claim and complete until nothing is left: each claim's messageIds, in the order the claim
    hands them out (a person's events, oldest first), sorted by the claim's first."""
    claimed_runs = []
    for _ in range(20):
        claims = await store.claim(T0, 100, 30.0)
        if not claims:
            return sorted(claimed_runs)
        claimed_runs += [[e.message_id for e in claim.events] for claim in claims]
        for claim in claims:
            for claimed in claim.events:
                assert await store.complete(claimed.id, "delivered", lease=claim.lease)
    raise AssertionError(f"still claiming after {claimed_runs}")


async def check_upgraded(store: Store) -> None:
    for mid, _, state, body, kind in OLD_KEYED:
        (found,) = await store.find_events(mid)
        payload = {"type": kind, "messageId": mid, **body}
        expected = found.ordering_key if state == "delivered" else ordering_key(payload)
        assert (mid, found.ordering_key) == (mid, expected)
    assert {mid: (await store.find_events(mid))[0].ordering_key for mid in NEW_KEYS} == NEW_KEYS
    # Every person's oldest unfinished event is its one head: m2 and m6 (heads under their old
    # keys) are claimed behind m1 and m5; an identify-track-identify-track person goes in that order.
    assert await delivered_in_order(store) == [["m1", "m2", "m3", "m4"], ["m10"], ["m5", "m6"], ["m7"]]
    assert await store.replay_dead_letters() == 1
    assert await delivered_in_order(store) == [["m8"]]


async def test_a_v3_sqlite_file_is_rekeyed_by_user_id_and_delivers_in_order(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrations.migrate_sqlite(conn, SQLITE_STEPS, target=3) == 3
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO events (destination_id, message_id, ordering_key, kind, payload, received_at,"
            " state, head, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            old_rows(),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    store = SQLiteStore(path)
    try:
        assert version_of(path) == LATEST
        await check_upgraded(store)
    finally:
        await store.close()


async def test_a_v2_postgresql_schema_is_rekeyed_by_user_id_and_delivers_in_order(postgres_url: str) -> None:
    steps = migrations.steps("postgres_migrations.sql")
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (2)")
        for step in steps[:2]:
            conn.execute(step.sql.encode())
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO events (destination_id, message_id, ordering_key, kind, payload, received_at,"
                " state, head, available_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                old_rows(),
            )
    store = PostgresStore(postgres_url)
    try:
        await check_upgraded(store)
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(PG_LATEST,)]


@pytest.mark.parametrize("user_id", ["u-1", "ünï ✓", 'q"x\\y', 0, 42, 2**53 + 1, 9.0, 1.5, -0.25])
async def test_the_schema_step_keys_an_id_as_ordering_key_does(
    user_id: object, tmp_path: Path, postgres_url: str
) -> None:
    """The SQL that re-keys the queue and the Python that keys new events agree, so an upgraded
    person's queued events and the events that arrive after the upgrade are one queue."""
    event = {"type": "track", "messageId": "m1", "userId": user_id, "anonymousId": "a1"}
    anonymous = {"type": "track", "messageId": "m2", "userId": "", "anonymousId": user_id}
    rows = [
        ("acme", e["messageId"], "email:x", "track", orjson.dumps(e), 1.0, "queued", True, 1.0)
        for e in (event, anonymous)
    ]
    path = tmp_path / "v3.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrations.migrate_sqlite(conn, SQLITE_STEPS, target=3)
        conn.executemany(
            "INSERT INTO events (destination_id, message_id, ordering_key, kind, payload,"
            " received_at, state, head, available_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        migrations.migrate_sqlite(conn, SQLITE_STEPS)
        sqlite_keys = [r[0] for r in conn.execute("SELECT ordering_key FROM events ORDER BY id")]
    steps = migrations.steps("postgres_migrations.sql")
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        for step in steps[:2]:
            conn.execute(step.sql.encode())
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO events (destination_id, message_id, ordering_key, kind, payload, received_at,"
                " state, head, available_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        conn.execute(steps[2].sql.encode())
        pg_keys = [r[0] for r in conn.execute("SELECT ordering_key FROM events ORDER BY id")]
    assert sqlite_keys == pg_keys == [ordering_key(event), ordering_key(anonymous)]
