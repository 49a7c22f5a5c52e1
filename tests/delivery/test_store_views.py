"""Read-only views for the admin routes, the CLI and /status. Every store."""

from __future__ import annotations

from pathlib import Path

import pytest

from destination.delivery import migrations
from destination.delivery.sqlite import MIGRATIONS, SQLiteStore
from destination.delivery.store import Attempt, Store
from tests.delivery.conftest import T0, FakeClock, claim_events, event

pytestmark = pytest.mark.anyio

LEASE = 30.0
REQUEST = {
    "method": "PUT",
    "url": "https://acme.gainsightcloud.com/v1.0/api/people",
    "headers": {"Accesskey": "***"},
    "body": {"Email": "ada@example.com"},
}


async def finish(store: Store, now: float, outcome: str, status: int | None = None) -> int:
    """Claim the one ready head, record an attempt, and finish it as `outcome`."""
    (claimed,) = await claim_events(store, now, 1, LEASE)
    attempt_outcome = "aborted" if outcome == "dead" else outcome
    attempt = Attempt(now, attempt_outcome, status, None, {"ok": 1}, REQUEST, "c1")  # type: ignore[arg-type]
    if outcome == "dead":
        assert await store.dead_letter(claimed.id, "refused", lease=claimed.lease, attempt=attempt)
    else:
        assert await store.complete(claimed.id, outcome, lease=claimed.lease, attempt=attempt)  # type: ignore[arg-type]
    return claimed.id


async def test_attempts_keep_the_request_sent_and_the_call_they_rode_on(store: Store) -> None:
    await store.enqueue([event("a1")])
    event_id = await finish(store, T0, "dead")
    stored = await store.get_event(event_id)
    assert stored is not None
    (attempt,) = stored.history
    assert (attempt.request, attempt.call, attempt.response) == (REQUEST, "c1", {"ok": 1})


BODILESS = {k: v for k, v in REQUEST.items() if k != "body"}


@pytest.mark.parametrize("outcome", ["delivered", "unchanged", "filtered"])
async def test_a_completed_event_keeps_its_requests_without_their_bodies(store: Store, outcome: str) -> None:
    await store.enqueue([event("a1")])
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    failed = Attempt(T0, "retryable", 503, "unavailable", {"no": 1}, REQUEST, "c0")
    assert await store.retry_later(claimed.id, T0, None, lease=claimed.lease, attempt=failed)
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    while_retrying = await store.get_event(claimed.id)
    assert while_retrying is not None and while_retrying.history[0].request == REQUEST  # still needed
    final = Attempt(T0 + 1, outcome, 200, None, {"ok": 1}, REQUEST, "c1")  # type: ignore[arg-type]
    assert await store.complete(claimed.id, outcome, lease=claimed.lease, attempt=final)  # type: ignore[arg-type]
    stored = await store.get_event(claimed.id)
    assert stored is not None
    assert [(a.request, a.call, a.response) for a in stored.history] == [
        (BODILESS, "c0", {"no": 1}),
        (BODILESS, "c1", {"ok": 1}),
    ]


async def test_a_dead_letter_keeps_every_request_body(store: Store) -> None:
    await store.enqueue([event("a1")])
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    failed = Attempt(T0, "retryable", 503, "unavailable", {"no": 1}, REQUEST, "c0")
    assert await store.retry_later(claimed.id, T0, None, lease=claimed.lease, attempt=failed)
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    refused = Attempt(T0 + 1, "aborted", 400, "refused", {"no": 2}, REQUEST, "c1")
    assert await store.dead_letter(claimed.id, "refused", lease=claimed.lease, attempt=refused)
    dead = await store.get_dead_letter(claimed.id)
    assert dead is not None and [a.request for a in dead.history] == [REQUEST, REQUEST]


async def test_an_attempt_without_request_or_call_reads_back_as_none(store: Store) -> None:
    await store.enqueue([event("a1")])
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    attempt = Attempt(T0, "retryable", 503, "unavailable")
    assert await store.retry_later(claimed.id, T0 + 1, None, lease=claimed.lease, attempt=attempt)
    stored = await store.get_event(claimed.id)
    assert stored is not None and len(stored.history) == 1
    assert (stored.history[0].request, stored.history[0].call) == (None, None)


async def test_events_are_found_by_message_id_in_every_destination_or_one(store: Store) -> None:
    await store.enqueue([event("m1", "ada"), event("m1", "bob", destination="globex"), event("m2", "cy")])
    assert [(e.destination_id, e.message_id) for e in await store.find_events("m1")] == [
        ("acme", "m1"),
        ("globex", "m1"),
    ]
    assert [e.destination_id for e in await store.find_events("m1", "globex")] == ["globex"]
    assert await store.find_events("m1", "initech") == []
    assert await store.find_events("nope") == []


async def test_events_are_listed_by_destination_and_state_a_page_at_a_time(store: Store) -> None:
    await store.enqueue(
        [event(f"m{i}", f"p{i}") for i in range(4)] + [event("g1", "q", destination="globex")]
    )
    await finish(store, T0, "delivered", 200)  # m0
    delivered = await store.list_events(state="delivered")
    assert [(e.message_id, e.state, e.attempts, e.finished_at) for e in delivered] == [
        ("m0", "delivered", 1, T0)
    ]
    assert [e.message_id for e in await store.list_events("acme", "queued")] == ["m1", "m2", "m3"]
    assert [e.message_id for e in await store.list_events("acme", "queued", limit=2, offset=1)] == [
        "m2",
        "m3",
    ]
    assert [e.message_id for e in await store.list_events("globex")] == ["g1"]
    assert await store.list_events(state="dead") == []


async def test_counts_by_destination_and_finished_since(store: Store, clock: FakeClock) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "bob"), event("g1", "cy", destination="globex")])
    clock.now = T0 + 10
    first = await finish(store, T0 + 10, "delivered", 200)
    clock.now = T0 + 20
    await finish(store, T0 + 20, "dead", 401)
    assert first == 1
    assert await store.counts_by_destination() == {
        "acme": {"delivered": 1, "dead": 1},
        "globex": {"queued": 1},
    }
    assert await store.finished_counts(T0) == {"acme": {"delivered": 1, "dead": 1}}
    assert await store.finished_counts(T0 + 15) == {"acme": {"dead": 1}}


async def test_recent_attempts_newest_first_optionally_failures_only(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("g1", "bob", destination="globex")])
    claimed = await claim_events(store, T0, 2, LEASE)
    by_message = {c.message_id: c for c in claimed}
    a1, g1 = by_message["a1"], by_message["g1"]
    retryable = Attempt(T0, "retryable", 503, "unavailable")
    assert await store.retry_later(a1.id, T0, None, lease=a1.lease, attempt=retryable)
    assert await store.complete(g1.id, "delivered", lease=g1.lease, attempt=Attempt(T0, "delivered", 200))
    (a1,) = await claim_events(store, T0, 1, LEASE)
    aborted = Attempt(T0 + 1, "aborted", 401, "bad key", {"e": 1})
    assert await store.dead_letter(a1.id, "bad key", lease=a1.lease, attempt=aborted)

    newest = await store.recent_attempts()
    assert [(r.message_id, r.attempt.outcome) for r in newest] == [
        ("a1", "aborted"),
        ("g1", "delivered"),
        ("a1", "retryable"),
    ]
    failed = await store.recent_attempts("acme", 1, failed_only=True)
    assert [(r.destination_id, r.kind, r.attempt.status_code, r.attempt.response) for r in failed] == [
        ("acme", "track", 401, {"e": 1})
    ]
    assert [r.message_id for r in await store.recent_attempts("globex", failed_only=True)] == []


async def test_budget_used_reads_the_shared_rate_windows(store: Store) -> None:
    windows = [("minute", T0, 100), ("day", T0 - 3600, 50_000)]
    for _ in range(3):
        assert await store.take_budget("acme.gainsightcloud.com", windows) is None
    used = await store.budget_used("acme.gainsightcloud.com", [("minute", T0), ("day", T0 - 3600)])
    assert used == {"minute": 3, "day": 3}
    assert await store.budget_used("acme.gainsightcloud.com", [("minute", T0 + 60)]) == {"minute": 0}
    assert await store.budget_used("other", [("minute", T0)]) == {"minute": 0}


async def test_dead_letter_list_counts_every_attempt_show_lists_even_after_replay(store: Store) -> None:
    await store.enqueue([event("a1")])
    await finish(store, T0, "dead", 401)
    assert await store.replay_dead_letters([1]) == 1
    await finish(store, T0 + 5, "dead", 401)
    (letter,) = await store.list_dead_letters()
    shown = await store.get_dead_letter(letter.id)
    assert shown is not None
    assert letter.attempts == shown.attempts == len(shown.history) == 2
    (summary,) = await store.list_events(state="dead")
    assert summary.attempts == 2
    (found,) = await store.find_events("a1")
    assert (found.attempts, found.replayed_at_attempt) == (2, 1)


async def test_a_schema_2_file_gains_the_history_counter_and_its_replay_baseline(tmp_path: Path) -> None:
    """Schemas 1 and 2 reset `attempts` on replay; step 3 makes it the history's length and keeps
    the old value's complement as the baseline, so the retry policy's count is unchanged."""
    import sqlite3

    path = tmp_path / "v2.sqlite3"
    old = SQLiteStore(path)
    await old.enqueue([event("a1"), event("b1", "bob")])
    await finish(old, T0, "dead", 401)  # a1 and b1 dead after one attempt each
    await finish(old, T0, "dead", 401)
    await old.close()
    conn = sqlite3.connect(path)  # what schema 2 held: a1 replayed (counter reset), then tried once more
    conn.execute("ALTER TABLE events DROP COLUMN replayed_at_attempt")
    conn.execute("DROP INDEX events_claimable_by_cost")  # step 8's
    conn.execute("ALTER TABLE events DROP COLUMN cost")
    conn.execute("ALTER TABLE last_companies DROP COLUMN event_id")  # step 9's
    conn.execute("UPDATE schema_version SET version = 2")
    conn.execute("UPDATE events SET state = 'queued', head = 1, available_at = 0, attempts = 1 WHERE id = 1")
    conn.execute("INSERT INTO event_attempts (event_id, at, outcome) VALUES (1, 0, 'retryable')")
    conn.commit()
    conn.close()

    reopened = SQLiteStore(path)
    try:
        a1, b1 = await reopened.get_event(1), await reopened.get_event(2)
        assert a1 is not None and b1 is not None
        assert (a1.attempts, a1.replayed_at_attempt, len(a1.history)) == (2, 1, 2)
        assert (b1.attempts, b1.replayed_at_attempt) == (1, 0)
        (claimed,) = await claim_events(reopened, T0, 5, LEASE)
        assert (claimed.message_id, claimed.attempts_since_replay) == ("a1", 1)
    finally:
        await reopened.close()
    latest = migrations.steps(MIGRATIONS)[-1].version
    assert sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchall() == [(latest,)]


async def test_a_store_file_from_before_attempt_requests_gains_the_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = SQLiteStore(path)
    await old.enqueue([event("a1")])
    await old.close()
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE t AS SELECT id, event_id, at, outcome, status_code, error, response FROM event_attempts"
    )
    conn.execute("DROP TABLE event_attempts")
    conn.execute("ALTER TABLE t RENAME TO event_attempts")
    # As the first release left it: schema version 1 (its step 2 adds the columns back).
    for table in ("company_gsids", "delivered_state"):
        conn.execute(f"DROP TABLE {table}")
    for index in (
        "events_by_lease",
        "events_rejected",
        "events_unchanged",
        "events_by_message",
        "events_finished",
    ):
        conn.execute(f"DROP INDEX {index}")
    conn.execute("ALTER TABLE events DROP COLUMN replayed_at_attempt")  # step 3's
    conn.execute("DROP INDEX events_claimable_by_cost")  # step 8's
    conn.execute("ALTER TABLE events DROP COLUMN cost")
    conn.execute("ALTER TABLE last_companies DROP COLUMN event_id")  # step 9's
    conn.execute("UPDATE schema_version SET version = 1")
    conn.commit()
    conn.close()

    reopened = SQLiteStore(path)
    try:
        (claimed,) = await claim_events(reopened, T0, 1, LEASE)
        attempt = Attempt(T0, "retryable", 503, None, None, REQUEST, "c9")
        assert await reopened.retry_later(claimed.id, T0 + 1, None, lease=claimed.lease, attempt=attempt)
        stored = await reopened.get_event(claimed.id)
        assert stored is not None and stored.history[0].call == "c9"
    finally:
        await reopened.close()
