"""Dead letters: inspection, replay in the original order, purge. Both stores."""

from __future__ import annotations

import pytest

from destination.delivery.store import Attempt, DeadLetter, Store
from tests.delivery.conftest import T0, FakeClock, claim_events, event

pytestmark = pytest.mark.anyio

LEASE = 30.0


async def kill_heads(store: Store, now: float = T0, reason: str = "400 bad request") -> list[int]:
    """Claim every ready head, record one aborted attempt and dead-letter it; the person's events
    claimed with it are put back."""
    killed = []
    for claim in await store.claim(now, 100, LEASE):
        head, *rest = claim.events
        aborted = Attempt(now, "aborted", 400, reason, {"errorCode": "X"})
        assert await store.dead_letter(head.id, reason, lease=claim.lease, attempt=aborted)
        killed.append(head.id)
        for later in rest:
            assert await store.retry_later(later.id, later.received_at, None, lease=claim.lease)
    return killed


async def test_dead_letters_are_listed_with_reason_and_attempts(store: Store, clock: FakeClock) -> None:
    await store.enqueue([event("a1", "ada"), event("b1", "bob", destination="globex")])
    clock.now = T0 + 3
    await kill_heads(store, reason="GSOBJ_PEOPLE1001")

    assert await store.list_dead_letters() == [
        DeadLetter(1, "acme", "a1", "ada", "track", T0, 1, "GSOBJ_PEOPLE1001", T0 + 3),
        DeadLetter(2, "globex", "b1", "bob", "track", T0, 1, "GSOBJ_PEOPLE1001", T0 + 3),
    ]
    assert [d.id for d in await store.list_dead_letters("globex")] == [2]
    assert await store.list_dead_letters("initech") == []


async def test_dead_letters_page_by_limit_and_offset(store: Store) -> None:
    await store.enqueue([event(f"m{i}", f"p{i}") for i in range(5)])
    await kill_heads(store)
    assert [d.message_id for d in await store.list_dead_letters(limit=2)] == ["m0", "m1"]
    assert [d.message_id for d in await store.list_dead_letters(limit=2, offset=2)] == ["m2", "m3"]
    assert [d.message_id for d in await store.list_dead_letters(limit=2, offset=4)] == ["m4"]


async def test_a_dead_letter_shows_its_payload_and_every_attempt(store: Store) -> None:
    new = event("a1")
    await store.enqueue([new])
    (claimed,) = await claim_events(store, T0, 1, LEASE)
    retryable = Attempt(T0, "retryable", 503, "unavailable")
    assert await store.retry_later(claimed.id, T0 + 1, None, lease=claimed.lease, attempt=retryable)
    await kill_heads(store, T0 + 1)

    dead = await store.get_dead_letter(claimed.id)
    assert dead is not None
    assert (dead.state, dead.payload, dead.attempts, dead.reason) == (
        "dead",
        new.payload,
        2,
        "400 bad request",
    )
    assert [(a.outcome, a.status_code) for a in dead.history] == [("retryable", 503), ("aborted", 400)]
    assert dead.history[1].response == {"errorCode": "X"}


async def test_an_event_that_is_not_dead_is_no_dead_letter(store: Store) -> None:
    await store.enqueue([event("a1")])
    assert await store.get_dead_letter(1) is None
    assert await store.get_dead_letter(99) is None


async def test_replay_requeues_in_the_original_order_keeping_the_one_attempt_counter(store: Store) -> None:
    """The counter is never reset (every view shows the whole history); the retry policy starts
    afresh from the baseline the replay stores."""
    await store.enqueue([event("a1", "ada"), event("a2", "ada"), event("a3", "ada")])
    (first,) = await claim_events(store, T0, 10, LEASE, calls=1)
    await store.retry_later(first.id, T0, {"company_gsid": "G1"}, lease=first.lease)
    assert await kill_heads(store) == [1]
    assert await kill_heads(store) == [2]  # a2 died after a1; a3 is next in line
    (third,) = await claim_events(store, T0, 10, LEASE, calls=1)
    assert third.message_id == "a3"
    await store.retry_later(third.id, T0 + 500, None, lease=third.lease)

    assert await store.replay_dead_letters() == 2
    assert await store.list_dead_letters() == []
    seen = []
    for _ in range(3):
        (claimed,) = await claim_events(store, T0 + 500, 10, LEASE, calls=1)
        seen.append((claimed.message_id, claimed.attempts, claimed.attempts_since_replay, claimed.progress))
        await store.complete(claimed.id, "delivered", lease=claimed.lease)
    assert seen == [("a1", 1, 0, None), ("a2", 1, 0, None), ("a3", 0, 0, None)]

    replayed = await store.get_event(1)
    assert replayed is not None and [a.outcome for a in replayed.history] == ["aborted"]
    assert (replayed.attempts, replayed.replayed_at_attempt) == (1, 1)


async def test_attempts_after_a_replay_add_to_the_counter_and_count_since_it(store: Store) -> None:
    await store.enqueue([event("a1", "ada")])
    await kill_heads(store)  # one attempt
    assert await store.replay_dead_letters() == 1
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    assert (claimed.attempts, claimed.replayed_at_attempt, claimed.attempts_since_replay) == (1, 1, 0)
    assert await store.retry_later(
        claimed.id, T0, None, lease=claimed.lease, attempt=Attempt(T0, "retryable", 503, "busy")
    )
    (again,) = await claim_events(store, T0, 10, LEASE)
    assert (again.attempts, again.attempts_since_replay) == (2, 1)
    refused = Attempt(T0, "aborted", 400, "bad")
    await store.dead_letter(again.id, "gave up", lease=again.lease, attempt=refused)
    (letter,) = await store.list_dead_letters()
    shown = await store.get_dead_letter(again.id)
    assert shown is not None
    assert letter.attempts == shown.attempts == len(shown.history) == 3
    assert await store.replay_dead_letters() == 1
    (third,) = await claim_events(store, T0, 10, LEASE)
    assert (third.attempts, third.attempts_since_replay) == (3, 0)


async def test_replay_by_ids_and_by_destination(store: Store) -> None:
    await store.enqueue(
        [event("a1", "ada"), event("b1", "bob"), event("c1", "cy", destination="globex"), event("d1", "dan")]
    )
    await kill_heads(store)
    assert await store.replay_dead_letters(ids=[1, 3, 77]) == 2
    assert [d.id for d in await store.list_dead_letters()] == [2, 4]
    assert await store.replay_dead_letters(destination_id="globex") == 0
    assert await store.replay_dead_letters(ids=[2, 4], destination_id="acme") == 2
    assert await store.replay_dead_letters(ids=[]) == 0
    assert (await store.counts())["queued"] == 4


async def test_a_replayed_event_waits_for_the_person_s_event_in_flight(store: Store) -> None:
    await store.enqueue([event("a1", "ada")])
    await kill_heads(store)
    await store.enqueue([event("a2", "ada")])
    (in_flight,) = await claim_events(store, T0, 10, LEASE)
    assert in_flight.message_id == "a2"

    assert await store.replay_dead_letters() == 1
    assert await claim_events(store, T0, 10, LEASE) == []
    await store.complete(in_flight.id, "delivered", lease=in_flight.lease)
    assert [e.message_id for e in await claim_events(store, T0, 10, LEASE)] == ["a1"]


async def test_a_replayed_event_goes_before_the_person_s_queued_events(store: Store) -> None:
    await store.enqueue([event("a1", "ada")])
    await kill_heads(store)
    await store.enqueue([event("a2", "ada", at=T0 + 1)])

    await store.replay_dead_letters()
    assert [e.message_id for e in await claim_events(store, T0 + 1, 10, LEASE)] == ["a1", "a2"]


async def test_purge_deletes_dead_letters_and_keeps_their_message_ids(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("b1", "bob"), event("c1", "cy", destination="globex")])
    await kill_heads(store)

    assert await store.purge_dead_letters(ids=[1]) == 1
    assert await store.get_event(1) is None
    assert await store.purge_dead_letters(destination_id="globex") == 1
    assert await store.purge_dead_letters() == 1
    assert await store.purge_dead_letters() == 0
    assert await store.counts() == {
        "queued": 0,
        "leased": 0,
        "delivered": 0,
        "unchanged": 0,
        "counted": 0,
        "filtered": 0,
        "rejected": 0,
        "dead": 0,
    }
    assert await store.enqueue([event("a1", "ada")]) == [False]


async def test_purge_leaves_live_events_alone(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "ada")])
    await kill_heads(store)
    assert await store.purge_dead_letters(ids=[1, 2]) == 1
    assert [e.message_id for e in await claim_events(store, T0, 10, LEASE)] == ["a2"]


# ---------------------------------------------------------------- rejected events


async def test_a_rejected_event_is_final_counted_and_replayable_only_by_id(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "ada", at=T0 + 1), event("b1", "bob")])
    first = await claim_events(store, T0, 10, LEASE)
    assert [c.message_id for c in first] == ["a1", "b1"]
    refused = Attempt(T0, "rejected", None, "email is required for identify")
    assert await store.reject(1, "email is required for identify", lease=first[0].lease, attempt=refused)
    assert not await store.reject(1, "again", lease=first[0].lease)  # final: no lease any more
    rejected = await store.get_event(1)
    assert rejected is not None
    assert (rejected.state, rejected.reason) == ("rejected", "email is required for identify")
    assert (await store.counts())["rejected"] == 1
    assert await store.list_dead_letters() == [] and await store.get_dead_letter(1) is None
    # The person's next event is claimable at once: a rejected event never blocks.
    assert [c.message_id for c in await claim_events(store, T0 + 1, 10, LEASE)] == ["a2"]

    assert await store.replay_dead_letters() == 0  # "replay all" means dead letters
    assert await store.purge_dead_letters(ids=[1]) == 0  # purge is for dead letters only
    assert await store.replay_dead_letters(ids=[1]) == 1
    replayed = await store.get_event(1)
    assert replayed is not None and (replayed.state, replayed.reason) == ("queued", None)
    assert [a.outcome for a in replayed.history] == ["rejected"]  # history survives replay


async def test_ids_beyond_sqlite_integers_name_no_event(store: Store) -> None:
    await store.enqueue([event("a1")])
    assert await store.get_event(2**63) is None and await store.get_event(2**64) is None
    assert await store.replay_dead_letters(ids=[2**64]) == 0
    assert await store.purge_dead_letters(ids=[2**63, -1]) == 0
    assert await store.list_dead_letters(offset=2**64) == []
