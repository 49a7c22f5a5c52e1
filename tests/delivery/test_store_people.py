"""Finding a person's events, what a queued event waits behind, and "retry now". Every store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import Attempt, NewEvent, Store
from tests.delivery.conftest import T0, FakeClock, claim_events, event

pytestmark = pytest.mark.anyio

LEASE = 30.0


def sent(message_id: str, kind: str = "track", person: str = "p", **fields: Any) -> NewEvent:
    """An event whose payload carries `fields` (userId, traits, context, …)."""
    payload = orjson.dumps({"type": kind, "messageId": message_id, **fields})
    return NewEvent("acme", message_id, person, kind, payload, T0)


async def listed(store: Store, user: str, **filters: Any) -> list[str]:
    return [e.message_id for e in await store.list_events(user=user, **filters)]


async def test_a_user_is_found_by_user_id_anonymous_id_or_email_in_every_store(store: Store) -> None:
    await store.enqueue(
        [
            sent("identify-1", "identify", userId="u1", traits={"email": "Ada@Example.com"}),
            sent("track-1", userId="u1", context={"traits": {"email": "ada@example.com"}}),
            sent("track-anon", anonymousId="anon-7"),
            sent("track-number", userId=42),
            # a group's traits.email is the company's address, not the person's
            sent("group-1", "group", userId="u2", traits={"name": "Acme", "email": "ada@example.com"}),
            sent("group-2", "group", userId="u3", context={"traits": {"email": "ada@example.com"}}),
            sent("other", userId="u10", traits={"email": "u1@example.com"}),
        ]
    )
    assert await listed(store, "u1") == ["identify-1", "track-1"]
    assert await listed(store, "anon-7") == ["track-anon"]
    assert await listed(store, "42") == ["track-number"]
    assert await listed(store, "ADA@example.COM") == ["identify-1", "track-1", "group-2"]
    assert await listed(store, "u") == []  # whole values only
    assert await listed(store, "Acme") == []  # other fields are not the person
    assert await listed(store, "u1", state="queued", limit=1, offset=1) == ["track-1"]
    assert await listed(store, "u1", destination_id="globex") == []


async def test_list_lines_carry_the_user_id_and_anonymous_id(store: Store) -> None:
    await store.enqueue(
        [sent("a", userId="u1", anonymousId="anon-1"), sent("b", anonymousId="anon-2"), event("c")]
    )
    lines = await store.list_events()
    assert [(e.message_id, e.user_id, e.anonymous_id) for e in lines] == [
        ("a", "u1", "anon-1"),
        ("b", None, "anon-2"),
        ("c", None, None),
    ]


async def test_the_latest_events_finished_in_a_state_newest_first(store: Store, clock: FakeClock) -> None:
    await store.enqueue(
        [sent(f"m{i}", userId=f"u{i}", person=f"p{i}") for i in range(4)]
        + [NewEvent("globex", "g1", "q", "track", b"{}", T0)]
    )
    for i, claimed in enumerate(await claim_events(store, T0, 5, LEASE)):
        clock.now = T0 + i
        outcome = "delivered" if claimed.message_id == "m2" else "filtered"
        assert await store.complete(claimed.id, outcome, lease=claimed.lease, reason=f"why {i}")  # type: ignore[arg-type]
    latest = await store.latest_finished("acme", "filtered", T0 + 1, 10)
    assert [(e.message_id, e.user_id, e.reason, e.finished_at) for e in latest] == [
        ("m3", "u3", "why 3", T0 + 3),
        ("m1", "u1", "why 1", T0 + 1),
    ]
    assert [e.message_id for e in await store.latest_finished("acme", "filtered", T0, 2)] == ["m3", "m1"]
    assert await store.latest_finished("acme", "rejected", T0, 10) == []


async def test_a_sqlite_payload_that_is_not_json_matches_no_user_and_breaks_no_list(tmp_path: Path) -> None:
    """Ingest stores JSON only; a file written otherwise still lists (PostgreSQL reads every listed
    payload as JSON, so there a payload must be JSON, as ingest writes it)."""
    store = SQLiteStore(tmp_path / "gsd.sqlite3")
    try:
        garbage = NewEvent("acme", "bad", "p", "track", b"\xff not json u1", T0)
        await store.enqueue([garbage, sent("good", userId="u1", person="q")])
        assert await listed(store, "u1") == ["good"]
        assert [(e.message_id, e.user_id) for e in await store.list_events()] == [
            ("bad", None),
            ("good", "u1"),
        ]
    finally:
        await store.close()


async def test_the_head_of_a_person_is_what_its_later_events_wait_behind(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "ada"), event("b1", "bob")])
    head = await store.person_head("acme", "ada")
    assert head is not None and (head.message_id, head.state) == ("a1", "queued")
    claimed = (await claim_events(store, T0, 2, LEASE))[0]  # ada's head (her a2 rides along)
    leased = await store.person_head("acme", "ada")
    assert leased is not None and (leased.message_id, leased.state) == ("a1", "leased")
    assert await store.complete(claimed.id, "delivered", lease=claimed.lease)
    after = await store.person_head("acme", "ada")
    assert after is not None and after.message_id == "a2"
    assert await store.person_head("acme", "nobody") is None


async def test_retry_now_makes_events_waiting_for_a_backoff_due(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("b1", "bob"), event("g1", "cy", destination="globex")])
    for claimed in await claim_events(store, T0, 3, LEASE):
        assert await store.retry_later(claimed.id, T0 + 600, None, lease=claimed.lease)
    assert await claim_events(store, T0 + 1, 10, LEASE) == []

    assert await store.retry_now([1], now=T0 + 1) == 1
    assert await store.retry_now([2], "globex", now=T0 + 1) == 0  # b1 is acme's
    assert [e.message_id for e in await claim_events(store, T0 + 1, 10, LEASE)] == ["a1"]
    assert await store.retry_now(destination_id="globex", now=T0 + 2) == 1
    assert await store.retry_now(now=T0 + 2) == 1  # b1: a1 is leased, g1 is due already
    assert [e.message_id for e in await claim_events(store, T0 + 2, 10, LEASE)] == ["b1", "g1"]
    assert await store.retry_now(now=T0 + 3) == 0
    assert await store.retry_now([2**64], now=T0 + 3) == 0  # no such id: nothing, never an error


async def test_retry_now_leaves_finished_and_dead_events_alone(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("b1", "bob")])
    a1, b1 = await claim_events(store, T0, 2, LEASE)
    assert await store.dead_letter(a1.id, "refused", lease=a1.lease)
    assert await store.complete(b1.id, "delivered", lease=b1.lease)
    assert await store.retry_now(now=T0 + 1) == 0
    assert [e.state for e in await store.list_events()] == ["dead", "delivered"]


async def test_a_filtered_event_keeps_its_reason(store: Store) -> None:
    await store.enqueue([event("t1")])
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    why = "event 'Signed Up' is not in eventNameMap"
    attempt = Attempt(T0, "filtered", None, why)
    assert await store.complete(claimed.id, "filtered", lease=claimed.lease, attempt=attempt, reason=why)
    stored = await store.get_event(claimed.id)
    assert stored is not None and (stored.state, stored.reason) == ("filtered", why)
    (line,) = await store.latest_finished("acme", "filtered", T0, 5)
    assert line.reason == why


async def test_recent_attempts_say_the_state_their_event_is_in_now(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("b1", "bob")])
    a1, b1 = await claim_events(store, T0, 2, LEASE)
    failed = Attempt(T0, "retryable", 503, "unavailable")
    assert await store.retry_later(a1.id, T0, None, lease=a1.lease, attempt=failed)
    assert await store.retry_later(b1.id, T0, None, lease=b1.lease, attempt=failed)
    (again, _) = await claim_events(store, T0 + 1, 2, LEASE)
    assert again.message_id == "a1"
    assert await store.complete(
        again.id, "delivered", lease=again.lease, attempt=Attempt(T0 + 1, "delivered")
    )
    errors = await store.recent_attempts(failed_only=True)
    assert sorted((r.message_id, r.state) for r in errors) == [("a1", "delivered"), ("b1", "leased")]


async def test_a_sqlite_search_for_a_user_does_not_wait_for_the_writer(tmp_path: Path) -> None:
    """A user is looked for in every payload: on a connection of its own, so a long search and
    the writer (ingest, delivery) never queue behind each other."""
    import asyncio
    import threading

    store = SQLiteStore(tmp_path / "gsd.sqlite3")
    release = threading.Event()
    try:
        await store.enqueue([sent("a", userId="u1")])
        busy = asyncio.ensure_future(store._writer.run(lambda conn: release.wait(60)))  # the writer, held
        found = await asyncio.wait_for(store.list_events(user="u1"), 30)
        assert [e.message_id for e in found] == ["a"] and not busy.done()
    finally:
        release.set()
        await store.close()
