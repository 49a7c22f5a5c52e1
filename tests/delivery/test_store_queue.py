"""The store's queue behaviour, identical for the SQLite and memory stores."""

from __future__ import annotations

import pytest

from destination.delivery.store import Attempt, QueuedEvent, Store, StoreClosedError
from tests.delivery.conftest import T0, FakeClock, StoreFactory, event

pytestmark = pytest.mark.anyio

LEASE = 30.0


def ids(events: list[QueuedEvent]) -> list[str]:
    return [e.message_id for e in events]


# enqueue and dedupe


async def test_enqueue_reports_each_event_stored(store: Store) -> None:
    assert await store.enqueue([event("m1"), event("m2", "bob@example.com")]) == [True, True]
    assert (await store.counts())["queued"] == 2


async def test_enqueue_of_nothing_stores_nothing(store: Store) -> None:
    assert await store.enqueue([]) == []
    assert await store.counts() == {
        "queued": 0,
        "leased": 0,
        "delivered": 0,
        "filtered": 0,
        "rejected": 0,
        "dead": 0,
    }


async def test_duplicate_message_id_in_one_call_is_stored_once(store: Store) -> None:
    assert await store.enqueue([event("m1"), event("m1"), event("m2")]) == [True, False, True]
    assert (await store.counts())["queued"] == 2


async def test_duplicate_message_id_in_a_later_call_is_dropped(store: Store) -> None:
    await store.enqueue([event("m1")])
    assert await store.enqueue([event("m1", at=T0 + 3600)]) == [False]


async def test_same_message_id_for_another_destination_is_not_a_duplicate(store: Store) -> None:
    await store.enqueue([event("m1", destination="acme")])
    assert await store.enqueue([event("m1", destination="globex")]) == [True]


async def test_message_id_counts_again_once_the_dedupe_window_has_passed(
    make_store: StoreFactory,
) -> None:
    store = make_store(dedupe_window_seconds=100.0)
    await store.enqueue([event("m1", at=T0)])
    assert await store.enqueue([event("m1", at=T0 + 99.9)]) == [False]
    assert await store.enqueue([event("m1", at=T0 + 100.0)]) == [True]
    # the window restarts from the accepted copy
    assert await store.enqueue([event("m1", at=T0 + 150.0)]) == [False]


async def test_duplicate_of_a_finished_event_is_still_dropped(store: Store) -> None:
    await store.enqueue([event("m1")])
    (claimed,) = await store.claim(T0, 10, LEASE, "w1")
    await store.complete(claimed.id, "delivered", owner="w1")
    assert await store.enqueue([event("m1", at=T0 + 60)]) == [False]


# claim order and per-person head of line


async def test_claim_returns_the_payload_and_a_first_attempt(store: Store) -> None:
    new = event("m1", kind="track")
    await store.enqueue([new])
    (claimed,) = await store.claim(T0, 10, LEASE, "w1")
    assert (claimed.message_id, claimed.kind, claimed.payload) == ("m1", "track", new.payload)
    assert (claimed.destination_id, claimed.ordering_key, claimed.received_at) == (
        "acme",
        new.ordering_key,
        T0,
    )
    assert (claimed.attempts, claimed.progress) == (1, None)


async def test_claim_takes_the_oldest_heads_up_to_the_limit(store: Store) -> None:
    await store.enqueue([event(f"m{i}", f"p{i}@example.com", at=T0 + i) for i in range(5)])
    assert ids(await store.claim(T0 + 10, 3, LEASE, "w1")) == ["m0", "m1", "m2"]
    assert ids(await store.claim(T0 + 10, 3, LEASE, "w1")) == ["m3", "m4"]
    assert await store.claim(T0 + 10, 3, LEASE, "w1") == []


async def test_claim_with_limit_zero_claims_nothing(store: Store) -> None:
    await store.enqueue([event("m1")])
    assert await store.claim(T0, 0, LEASE, "w1") == []
    assert (await store.counts())["queued"] == 1


async def test_nothing_is_claimable_before_it_is_received(store: Store) -> None:
    await store.enqueue([event("m1", at=T0)])
    assert await store.claim(T0 - 1, 10, LEASE, "w1") == []


async def test_a_person_s_next_event_waits_until_the_one_in_flight_is_delivered(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "ada"), event("b1", "bob")])
    assert ids(await store.claim(T0, 10, LEASE, "w1")) == ["a1", "b1"]
    assert await store.claim(T0, 10, LEASE, "w2") == []

    claimed = await store.get_event(1)
    assert claimed is not None and claimed.state == "leased"
    assert await store.complete(1, "delivered", owner="w1")
    assert ids(await store.claim(T0, 10, LEASE, "w2")) == ["a2"]


async def test_a_person_s_events_arriving_in_separate_calls_keep_their_order(store: Store) -> None:
    for i in range(4):
        await store.enqueue([event(f"a{i}", "ada", at=T0 + i)])
    seen = []
    for _ in range(4):
        (claimed,) = await store.claim(T0 + 10, 10, LEASE, "w1")
        seen.append(claimed.message_id)
        await store.complete(claimed.id, "filtered", owner="w1")
    assert seen == ["a0", "a1", "a2", "a3"]


async def test_an_event_waiting_for_its_retry_blocks_only_its_own_person(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "ada"), event("b1", "bob", at=T0 + 1)])
    first = await store.claim(T0, 1, LEASE, "w1")
    assert ids(first) == ["a1"]
    assert await store.retry_later(first[0].id, T0 + 60, None, owner="w1")

    (other,) = await store.claim(T0 + 5, 10, LEASE, "w1")
    assert other.message_id == "b1"
    assert await store.complete(other.id, "delivered", owner="w1")
    assert await store.claim(T0 + 59, 10, LEASE, "w1") == []
    assert ids(await store.claim(T0 + 60, 10, LEASE, "w1")) == ["a1"]


async def test_the_same_ordering_key_in_two_destinations_is_two_people(store: Store) -> None:
    await store.enqueue([event("a1", "ada", destination="acme"), event("g1", "ada", destination="globex")])
    assert ids(await store.claim(T0, 10, LEASE, "w1")) == ["a1", "g1"]


async def test_a_dead_letter_unblocks_the_person_s_next_event(store: Store) -> None:
    await store.enqueue([event("a1", "ada"), event("a2", "ada")])
    (first,) = await store.claim(T0, 10, LEASE, "w1")
    assert await store.dead_letter(first.id, "400 GSOBJ_PEOPLE1001", owner="w1")
    assert ids(await store.claim(T0, 10, LEASE, "w1")) == ["a2"]


# leases


async def test_an_expired_lease_makes_the_event_claimable_again(store: Store) -> None:
    await store.enqueue([event("m1")])
    (first,) = await store.claim(T0, 10, LEASE, "crashed")
    assert await store.claim(T0 + LEASE - 0.001, 10, LEASE, "w2") == []

    (again,) = await store.claim(T0 + LEASE, 10, LEASE, "w2")
    assert (again.id, again.attempts) == (first.id, 2)
    stored = await store.get_event(first.id)
    assert stored is not None and stored.lease_owner == "w2"


async def test_a_worker_that_lost_its_lease_cannot_move_the_event(store: Store) -> None:
    await store.enqueue([event("m1")])
    (first,) = await store.claim(T0, 10, LEASE, "slow")
    await store.claim(T0 + LEASE, 10, LEASE, "w2")

    assert not await store.complete(first.id, "delivered", owner="slow")
    assert not await store.retry_later(first.id, T0, None, owner="slow")
    assert not await store.dead_letter(first.id, "late", owner="slow")
    assert await store.complete(first.id, "delivered", owner="w2")
    assert not await store.complete(first.id, "delivered", owner="w2")


async def test_finishing_an_event_that_is_not_leased_does_nothing(store: Store) -> None:
    await store.enqueue([event("m1")])
    assert not await store.complete(1, "delivered", owner="w1")
    assert not await store.complete(999, "delivered", owner="w1")
    assert (await store.counts())["queued"] == 1


# retries and progress


async def test_retry_later_keeps_progress_for_the_next_try(store: Store) -> None:
    await store.enqueue([event("g1", kind="group")])
    (first,) = await store.claim(T0, 10, LEASE, "w1")
    progress = {"company_gsid": "1P02GSID", "steps": ["company"]}
    assert await store.retry_later(first.id, T0 + 5, progress, owner="w1")
    assert await store.claim(T0 + 4, 10, LEASE, "w1") == []

    (second,) = await store.claim(T0 + 5, 10, LEASE, "w1")
    assert (second.id, second.attempts, second.progress) == (first.id, 2, progress)
    assert await store.retry_later(second.id, T0 + 9, None, owner="w1")
    (third,) = await store.claim(T0 + 9, 10, LEASE, "w1")
    assert (third.attempts, third.progress) == (3, None)


async def test_attempts_are_recorded_in_order_with_gainsight_s_answer(store: Store) -> None:
    await store.enqueue([event("m1")])
    (claimed,) = await store.claim(T0, 10, LEASE, "w1")
    answer = {"result": False, "errorCode": "GU_2400", "errorDesc": "Too many request"}
    assert await store.record_attempt(claimed.id, Attempt(T0, "throttled", 429, "rate limited", answer))
    assert await store.record_attempt(claimed.id, Attempt(T0 + 1, "delivered", 200))
    stored = await store.get_event(claimed.id)
    assert stored is not None
    assert stored.history == (
        Attempt(T0, "throttled", 429, "rate limited", answer),
        Attempt(T0 + 1, "delivered", 200, None, None),
    )


async def test_an_attempt_for_an_unknown_event_is_refused(store: Store) -> None:
    assert not await store.record_attempt(42, Attempt(T0, "retryable"))


async def test_unknown_outcomes_are_rejected(store: Store) -> None:
    await store.enqueue([event("m1")])
    (claimed,) = await store.claim(T0, 10, LEASE, "w1")
    with pytest.raises(ValueError):
        await store.record_attempt(claimed.id, Attempt(T0, "lost"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.complete(claimed.id, "aborted", owner="w1")  # type: ignore[arg-type]


async def test_complete_records_the_final_state_and_time(store: Store, clock: FakeClock) -> None:
    await store.enqueue([event("m1"), event("m2", "bob")])
    one, two = await store.claim(T0, 10, LEASE, "w1")
    clock.now = T0 + 7
    await store.complete(one.id, "delivered", owner="w1")
    await store.complete(two.id, "filtered", owner="w1")

    stored = await store.get_event(one.id)
    assert stored is not None
    assert (stored.state, stored.finished_at, stored.available_at, stored.lease_owner) == (
        "delivered",
        T0 + 7,
        None,
        None,
    )
    assert await store.counts() == {
        "queued": 0,
        "leased": 0,
        "delivered": 1,
        "filtered": 1,
        "rejected": 0,
        "dead": 0,
    }


async def test_get_event_of_an_unknown_id_is_none(store: Store) -> None:
    assert await store.get_event(12345) is None


# pruning


async def test_prune_forgets_finished_events_and_message_ids_past_the_window(
    make_store: StoreFactory,
) -> None:
    store = make_store(dedupe_window_seconds=100.0)
    await store.enqueue([event("old", "ada", at=T0), event("dead", "bob", at=T0), event("q", "cy", at=T0)])
    await store.enqueue([event("recent", "dan", at=T0 + 50)])
    for claimed in await store.claim(T0 + 50, 10, LEASE, "w1"):
        if claimed.message_id == "dead":
            await store.dead_letter(claimed.id, "bad", owner="w1")
        elif claimed.message_id == "q":
            await store.retry_later(claimed.id, T0 + 1000, None, owner="w1")
        else:
            await store.complete(claimed.id, "delivered", owner="w1")

    assert await store.prune(T0 + 120) == 1
    assert await store.get_event(1) is None
    assert await store.counts() == {
        "queued": 1,
        "leased": 0,
        "delivered": 1,
        "filtered": 0,
        "rejected": 0,
        "dead": 1,
    }
    # "old" was seen before the window: it is new again; "recent" is still remembered
    assert await store.enqueue([event("old", at=T0 + 120), event("recent", at=T0 + 120)]) == [True, False]


async def test_a_closed_store_refuses_work(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.enqueue([event("m1")])
    with pytest.raises(StoreClosedError):
        await store.counts()


async def test_prune_forgets_rejected_events_past_the_window(make_store: StoreFactory) -> None:
    store = make_store(dedupe_window_seconds=100.0)
    await store.enqueue([event("rejected", "ada", at=T0), event("recent", "bob", at=T0 + 50)])
    for claimed in await store.claim(T0 + 50, 10, LEASE, "w1"):
        await store.reject(claimed.id, "email is required for identify", owner="w1")
    assert await store.prune(T0 + 120) == 1
    assert await store.get_event(1) is None and await store.get_event(2) is not None
    assert (await store.counts())["rejected"] == 1
