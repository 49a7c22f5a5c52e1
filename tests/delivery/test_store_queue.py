"""The store's queue behaviour, identical for the SQLite and memory stores."""

from __future__ import annotations

import pytest

from destination.delivery.store import (
    GSID_RETENTION_SECONDS,
    MAX_RUN_CALLS,
    Attempt,
    QueuedEvent,
    Store,
    StoreClosedError,
)
from destination.delivery.store_values import NO_BOUND, Calls
from tests.delivery.conftest import T0, FakeClock, StoreFactory, claim_events, event

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
    assert await store.counts() == dict.fromkeys(
        ("queued", "leased", "delivered", "unchanged", "counted", "filtered", "rejected", "dead"), 0
    )


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
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    await store.complete(claimed.id, "delivered", lease=claimed.lease)
    assert await store.enqueue([event("m1", at=T0 + 60)]) == [False]


# claim order and per-person head of line


async def test_claim_returns_the_payload_and_a_first_attempt(store: Store) -> None:
    new = event("m1", kind="track")
    await store.enqueue([new])
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    assert (claimed.message_id, claimed.kind, claimed.payload) == ("m1", "track", new.payload)
    assert (claimed.destination_id, claimed.ordering_key, claimed.received_at) == (
        "acme",
        new.ordering_key,
        T0,
    )
    assert (claimed.attempts, claimed.progress) == (0, None)


async def test_claim_takes_the_oldest_heads_up_to_the_limit(store: Store) -> None:
    await store.enqueue([event(f"m{i}", f"p{i}@example.com", at=T0 + i) for i in range(5)])
    assert ids(await claim_events(store, T0 + 10, 3, LEASE)) == ["m0", "m1", "m2"]
    assert ids(await claim_events(store, T0 + 10, 3, LEASE)) == ["m3", "m4"]
    assert await claim_events(store, T0 + 10, 3, LEASE) == []


@pytest.mark.parametrize("limit", [0, -1])
async def test_claim_with_limit_zero_or_less_claims_nothing(store: Store, limit: int) -> None:
    await store.enqueue([event("m1"), event("m2", "bob@example.com")])
    assert await claim_events(store, T0 + 10, limit, LEASE) == []
    assert (await store.counts())["queued"] == 2


async def test_nothing_is_claimable_before_it_is_received(store: Store) -> None:
    await store.enqueue([event("m1", at=T0)])
    assert await claim_events(store, T0 - 1, 10, LEASE) == []


async def test_a_person_s_next_event_waits_until_the_one_in_flight_is_delivered(store: Store) -> None:
    await store.enqueue([event("a1", "ada", kind="track")])
    (first,) = await claim_events(store, T0, 10, LEASE)
    await store.enqueue([event("a2", "ada"), event("b1", "bob")])
    assert ids(await claim_events(store, T0, 10, LEASE)) == ["b1"]

    claimed = await store.get_event(1)
    assert claimed is not None and claimed.state == "leased"
    assert await store.complete(1, "delivered", lease=first.lease)
    assert ids(await claim_events(store, T0, 10, LEASE)) == ["a2"]


# person runs


async def test_a_claim_takes_a_person_s_due_events_in_order(store: Store) -> None:
    queued = ["identify", "group", "identify", "track", "identify", "track", "track"]
    await store.enqueue([event(f"a{i}", "ada", kind=k, at=T0 + i) for i, k in enumerate(queued)])
    (claim,) = await store.claim(T0 + 10, 10, LEASE)
    assert [e.message_id for e in claim.events] == [f"a{i}" for i in range(len(queued))]
    assert {e.lease for e in claim.events} == {claim.lease}
    assert await store.claim(T0 + 10, 10, LEASE) == []


@pytest.mark.parametrize(
    ("calls", "run"),
    [
        (1, 2),  # identify and group: one Person upsert; the track would be a second call
        (2, 3),
        (3, 4),
        (4, 5),
        (5, 6),
    ],
)
async def test_calls_bound_what_a_claim_takes(store: Store, calls: int, run: int) -> None:
    queued = ["identify", "group", "track", "identify", "track", "group"]
    await store.enqueue([event(f"a{i}", "ada", kind=k, at=T0 + i) for i, k in enumerate(queued)])
    await store.enqueue([event("b0", "bob", kind="track", at=T0 + 20)])
    (claim,) = await store.claim(T0 + 30, 10, LEASE, Calls(calls, NO_BOUND.timeline))  # bob: no call left
    assert [e.message_id for e in claim.events] == [f"a{i}" for i in range(run)]


async def test_a_claim_needs_at_most_max_run_calls(store: Store) -> None:
    queued = ["identify", "group"] + ["track"] * (MAX_RUN_CALLS + 5)
    await store.enqueue([event(f"a{i}", "ada", kind=k, at=T0 + i) for i, k in enumerate(queued)])
    (claim,) = await store.claim(T0 + 100, 10, LEASE)
    assert len(claim.events) == 2 + MAX_RUN_CALLS - 1  # one upsert, then tracks


async def test_calls_are_shared_by_the_claims_of_one_call_to_claim(store: Store) -> None:
    await store.enqueue([event(f"{who}{i}", who, kind="track", at=T0 + i) for who in "abc" for i in range(3)])
    claims = await store.claim(T0 + 10, 10, LEASE, Calls(4, NO_BOUND.timeline))
    assert [[e.message_id for e in c.events] for c in claims] == [["a0", "a1", "a2"], ["b0"]]


async def test_a_run_stops_at_an_event_not_yet_due(store: Store) -> None:
    await store.enqueue(
        [event("a0", "ada", kind="identify"), event("a1", "ada", kind="identify", at=T0 + 50)]
    )
    (claim,) = await store.claim(T0 + 10, 10, LEASE)
    assert [e.message_id for e in claim.events] == ["a0"]


async def test_each_claim_has_its_own_lease_and_the_limit_counts_claims(store: Store) -> None:
    await store.enqueue(
        [
            event("a0", "ada", kind="identify"),
            event("a1", "ada", kind="group"),
            event("b0", "bob"),
            event("c0", "cy"),
        ]
    )
    claims = await store.claim(T0, 2, LEASE)
    assert [[e.message_id for e in c.events] for c in claims] == [["a0", "a1"], ["b0"]]
    assert claims[0].lease != claims[1].lease


async def test_with_one_call_a_claim_the_run_after_a_track_follows_the_track(store: Store) -> None:
    kinds_queued = ["identify", "track", "group", "identify", "track"]
    await store.enqueue([event(f"a{i}", "ada", kind=k, at=T0 + i) for i, k in enumerate(kinds_queued)])
    seen = []
    while claims := await store.claim(T0 + 10, 10, LEASE, Calls(1, NO_BOUND.timeline)):
        (claim,) = claims
        seen.append([e.message_id for e in claim.events])
        for e in claim.events:
            assert await store.complete(e.id, "delivered", lease=claim.lease)
    assert seen == [["a0"], ["a1"], ["a2", "a3"], ["a4"]]


async def test_a_person_s_events_arriving_in_separate_calls_keep_their_order(store: Store) -> None:
    for i in range(4):
        await store.enqueue([event(f"a{i}", "ada", at=T0 + i, kind="track")])
    seen = []
    for _ in range(4):
        (claimed,) = await claim_events(store, T0 + 10, 10, LEASE, calls=1)
        seen.append(claimed.message_id)
        await store.complete(claimed.id, "filtered", lease=claimed.lease)
    assert seen == ["a0", "a1", "a2", "a3"]


async def test_an_event_waiting_for_its_retry_blocks_only_its_own_person(store: Store) -> None:
    await store.enqueue([event("a1", "ada", kind="track"), event("a2", "ada"), event("b1", "bob", at=T0 + 1)])
    first = await claim_events(store, T0, 1, LEASE, calls=1)
    assert ids(first) == ["a1"]
    assert await store.retry_later(first[0].id, T0 + 60, None, lease=first[0].lease)

    (other,) = await claim_events(store, T0 + 5, 10, LEASE)
    assert other.message_id == "b1"
    assert await store.complete(other.id, "delivered", lease=other.lease)
    assert await claim_events(store, T0 + 59, 10, LEASE) == []
    assert ids(await claim_events(store, T0 + 60, 10, LEASE)) == ["a1", "a2"]


async def test_the_same_ordering_key_in_two_destinations_is_two_people(store: Store) -> None:
    await store.enqueue([event("a1", "ada", destination="acme"), event("g1", "ada", destination="globex")])
    assert ids(await claim_events(store, T0, 10, LEASE)) == ["a1", "g1"]


async def test_a_dead_letter_unblocks_the_person_s_next_event(store: Store) -> None:
    await store.enqueue([event("a1", "ada", kind="track"), event("a2", "ada")])
    (first,) = await claim_events(store, T0, 10, LEASE, calls=1)
    assert await store.dead_letter(first.id, "400 GSOBJ_PEOPLE1001", lease=first.lease)
    assert ids(await claim_events(store, T0, 10, LEASE)) == ["a2"]


# leases


async def test_an_expired_lease_makes_the_event_claimable_again(store: Store) -> None:
    await store.enqueue([event("m1")])
    (first,) = await claim_events(store, T0, 10, LEASE)
    assert await claim_events(store, T0 + LEASE - 0.001, 10, LEASE) == []

    (again,) = await claim_events(store, T0 + LEASE, 10, LEASE)
    assert (again.id, again.attempts) == (first.id, 0)
    assert again.lease != first.lease
    stored = await store.get_event(first.id)
    assert stored is not None and stored.lease_owner == again.lease


async def test_a_renewed_lease_keeps_the_claim(store: Store) -> None:
    await store.enqueue([event("a0", "ada", kind="identify"), event("a1", "ada", kind="identify")])
    (claim,) = await store.claim(T0, 10, LEASE)
    assert await store.renew(claim.lease, T0 + LEASE - 1, LEASE) == 2
    assert await store.claim(T0 + LEASE + 1, 10, LEASE) == []
    assert await store.complete(claim.events[0].id, "delivered", lease=claim.lease)
    assert await store.renew(claim.lease, T0 + LEASE + 1, LEASE) == 1


async def test_a_lease_lost_to_another_claim_cannot_be_renewed(store: Store) -> None:
    await store.enqueue([event("a0", "ada")])
    (slow,) = await store.claim(T0, 10, LEASE)
    (fast,) = await store.claim(T0 + LEASE, 10, LEASE)
    assert await store.renew(slow.lease, T0 + LEASE, LEASE) == 0
    assert await store.renew(fast.lease, T0 + LEASE, LEASE) == 1


async def test_a_worker_that_lost_its_lease_cannot_move_the_event(store: Store) -> None:
    await store.enqueue([event("m1")])
    (first,) = await claim_events(store, T0, 10, LEASE)
    (second,) = await claim_events(store, T0 + LEASE, 10, LEASE)

    assert not await store.complete(first.id, "delivered", lease=first.lease)
    assert not await store.retry_later(first.id, T0, None, lease=first.lease)
    assert not await store.dead_letter(first.id, "late", lease=first.lease)
    assert await store.complete(second.id, "delivered", lease=second.lease)
    assert not await store.complete(second.id, "delivered", lease=second.lease)


async def test_finishing_an_event_that_is_not_leased_does_nothing(store: Store) -> None:
    await store.enqueue([event("m1")])
    assert not await store.complete(1, "delivered", lease="")
    assert not await store.complete(999, "delivered", lease="any")
    assert (await store.counts())["queued"] == 1


# retries and progress


async def test_retry_later_keeps_progress_for_the_next_try(store: Store) -> None:
    await store.enqueue([event("g1", kind="group")])
    (first,) = await claim_events(store, T0, 10, LEASE)
    progress = {"company_gsid": "1P02GSID", "steps": ["company"]}
    assert await store.retry_later(first.id, T0 + 5, progress, lease=first.lease)
    assert await claim_events(store, T0 + 4, 10, LEASE) == []

    (second,) = await claim_events(store, T0 + 5, 10, LEASE)
    assert (second.id, second.progress) == (first.id, progress)
    assert await store.retry_later(second.id, T0 + 9, None, lease=second.lease)
    (third,) = await claim_events(store, T0 + 9, 10, LEASE)
    assert third.progress is None


async def test_the_attempt_counter_counts_recorded_attempts(store: Store) -> None:
    await store.enqueue([event("m1")])
    (first,) = await claim_events(store, T0, 10, LEASE)
    attempt = Attempt(T0, "retryable", 503)
    assert await store.retry_later(first.id, T0 + 1, None, lease=first.lease, attempt=attempt)
    (second,) = await claim_events(store, T0 + 1, 10, LEASE)
    assert second.attempts == 1
    await store.retry_later(second.id, T0 + 2, None, lease=second.lease)  # e.g. over budget
    (third,) = await claim_events(store, T0 + 2, 10, LEASE)
    assert third.attempts == 1
    stored = await store.get_event(first.id)
    assert stored is not None and stored.attempts == len(stored.history) == 1


async def test_attempts_are_recorded_in_order_with_gainsight_s_answer(store: Store) -> None:
    await store.enqueue([event("m1")])
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    answer = {"result": False, "errorCode": "GU_2400", "errorDesc": "Too many request"}
    throttled = Attempt(T0, "throttled", 429, "rate limited", answer)
    assert await store.retry_later(claimed.id, T0 + 1, None, lease=claimed.lease, attempt=throttled)
    (again,) = await claim_events(store, T0 + 1, 10, LEASE)
    delivered = Attempt(T0 + 1, "delivered", 200)
    assert await store.complete(again.id, "delivered", lease=again.lease, attempt=delivered)
    stored = await store.get_event(claimed.id)
    assert stored is not None
    assert stored.history == (
        Attempt(T0, "throttled", 429, "rate limited", answer),
        Attempt(T0 + 1, "delivered", 200, None, None),
    )


async def test_an_attempt_keeps_the_request_sent_and_the_call_it_rode_on(store: Store) -> None:
    await store.enqueue([event("m1")])
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    request = {
        "method": "PUT",
        "url": "https://x/v1.0/api/people",
        "headers": {"Accesskey": "***"},
        "body": {},
    }
    attempt = Attempt(T0, "aborted", 400, request=request, call="c-1")
    assert await store.dead_letter(claimed.id, "bad request", lease=claimed.lease, attempt=attempt)
    stored = await store.get_event(claimed.id)
    assert stored is not None and stored.history[0].request == request and stored.history[0].call == "c-1"


async def test_an_attempt_without_the_lease_or_for_an_unknown_event_is_refused(store: Store) -> None:
    attempt = Attempt(T0, "retryable", 503)
    assert not await store.retry_later(42, T0 + 1, None, lease="no-such-lease", attempt=attempt)
    await store.enqueue([event("m1")])
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    assert not await store.retry_later(claimed.id, T0 + 1, None, lease="another-lease", attempt=attempt)
    assert not await store.dead_letter(claimed.id, "x", lease="another-lease", attempt=attempt)
    stored = await store.get_event(claimed.id)
    assert stored is not None and (stored.attempts, stored.history) == (0, ())


async def test_unknown_outcomes_are_rejected(store: Store) -> None:
    await store.enqueue([event("m1")])
    (claimed,) = await claim_events(store, T0, 10, LEASE)
    with pytest.raises(ValueError):
        lost = Attempt(T0, "lost")  # type: ignore[arg-type]
        await store.retry_later(claimed.id, T0 + 1, None, lease=claimed.lease, attempt=lost)
    with pytest.raises(ValueError):
        await store.complete(claimed.id, "aborted", lease=claimed.lease)  # type: ignore[arg-type]


async def test_complete_records_the_final_state_and_time(store: Store, clock: FakeClock) -> None:
    await store.enqueue([event("m1"), event("m2", "bob"), event("m3", "cy")])
    one, two, three = await claim_events(store, T0, 10, LEASE)
    clock.now = T0 + 7
    await store.complete(one.id, "delivered", lease=one.lease)
    await store.complete(two.id, "filtered", lease=two.lease)
    await store.complete(three.id, "unchanged", lease=three.lease)

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
        "unchanged": 1,
        "counted": 0,
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
    for claimed in await claim_events(store, T0 + 50, 10, LEASE):
        if claimed.message_id == "dead":
            await store.dead_letter(claimed.id, "bad", lease=claimed.lease)
        elif claimed.message_id == "q":
            await store.retry_later(claimed.id, T0 + 1000, None, lease=claimed.lease)
        else:
            await store.complete(claimed.id, "delivered", lease=claimed.lease)

    assert await store.prune(T0 + 120) == 1
    assert await store.get_event(1) is None
    assert await store.counts() == {
        "queued": 1,
        "leased": 0,
        "delivered": 1,
        "unchanged": 0,
        "counted": 0,
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


# memory shared by every process: Gsids and delivered state


async def test_gsids_are_remembered_per_scope_and_forgotten_on_request(store: Store) -> None:
    await store.remember_gsids("acme.gainsightcloud.com", {"Acme": "G1", "Globex": "G2"}, T0)
    await store.remember_gsids("acme.gainsightcloud.com", {"Acme": "G3"}, T0 + 1)
    assert await store.company_gsids("acme.gainsightcloud.com", ["Acme", "Globex", "acme"]) == {
        "Acme": "G3",
        "Globex": "G2",
    }
    assert await store.company_gsids("other.gainsightcloud.com", ["Acme"]) == {}
    await store.forget_gsids("acme.gainsightcloud.com", ["Acme"])
    assert await store.company_gsids("acme.gainsightcloud.com", ["Acme"]) == {}


async def test_gsids_learnt_before_their_retention_are_pruned(store: Store) -> None:
    await store.remember_gsids("t", {"Acme": "G1"}, T0)
    await store.remember_gsids("t", {"Globex": "G2"}, T0 + 10)
    await store.prune(T0 + GSID_RETENTION_SECONDS)  # Acme's is exactly as old as kept: still known
    assert await store.company_gsids("t", ["Acme", "Globex"]) == {"Acme": "G1", "Globex": "G2"}
    await store.prune(T0 + GSID_RETENTION_SECONDS + 5)
    assert await store.company_gsids("t", ["Acme", "Globex"]) == {"Globex": "G2"}
    await store.remember_gsids("t", {"Globex": "G3"}, T0 + GSID_RETENTION_SECONDS + 5)  # learnt anew
    await store.prune(T0 + GSID_RETENTION_SECONDS + 20)
    assert await store.company_gsids("t", ["Globex"]) == {"Globex": "G3"}


async def test_delivered_state_is_pruned_past_its_ttl(store: Store) -> None:
    await store.remember_states("t", "person", {"ada@x.com": {"Name": "Ada"}}, T0)
    await store.remember_states("t", "person", {"bob@x.com": {"Name": "Bob"}}, T0 + 50)
    await store.prune(T0 + 100, state_ttl_seconds=100)  # Ada's is exactly as old as the TTL: kept
    assert set(await store.delivered_states("t", "person", ["ada@x.com", "bob@x.com"], 0)) == {
        "ada@x.com",
        "bob@x.com",
    }
    await store.prune(T0 + 120, state_ttl_seconds=100)
    assert set(await store.delivered_states("t", "person", ["ada@x.com", "bob@x.com"], 0)) == {"bob@x.com"}


async def test_delivered_state_is_recalled_only_within_its_ttl(store: Store) -> None:
    await store.remember_states("t", "person", {"ada@x.com": {"Name": "Ada", "companies": ["G1"]}}, T0)
    await store.remember_states("t", "company", {"Acme": {"Name": "Acme"}}, T0)
    assert await store.delivered_states("t", "person", ["ada@x.com", "bob@x.com"], T0) == {
        "ada@x.com": {"Name": "Ada", "companies": ["G1"]}
    }
    assert await store.delivered_states("t", "person", ["ada@x.com"], T0 + 1) == {}
    assert await store.delivered_states("t", "company", ["Acme"], T0 - 5) == {"Acme": {"Name": "Acme"}}
    await store.forget_states("t", "company", ["Acme"])
    assert await store.delivered_states("t", "company", ["Acme"], T0 - 5) == {}


async def test_prune_forgets_rejected_events_past_the_window(make_store: StoreFactory) -> None:
    store = make_store(dedupe_window_seconds=100.0)
    await store.enqueue([event("rejected", "ada", at=T0), event("recent", "bob", at=T0 + 50)])
    for claimed in await claim_events(store, T0 + 50, 10, LEASE):
        await store.reject(claimed.id, "email is required for identify", lease=claimed.lease)
    assert await store.prune(T0 + 120) == 1
    assert await store.get_event(1) is None and await store.get_event(2) is not None
    assert (await store.counts())["rejected"] == 1


async def test_an_attempt_is_recorded_with_the_move_only_while_the_lease_holds(store: Store) -> None:
    await store.enqueue([event("m1")])
    (stale,) = await claim_events(store, T0, 10, LEASE)
    (fresh,) = await claim_events(store, T0 + LEASE, 10, LEASE)
    late = Attempt(T0 + LEASE, "delivered", 200, call="c-stale")
    assert not await store.complete(stale.id, "delivered", lease=stale.lease, attempt=late)
    assert not await store.retry_later(stale.id, T0, None, lease=stale.lease, attempt=late)
    assert not await store.dead_letter(stale.id, "late", lease=stale.lease, attempt=late)
    held = await store.get_event(fresh.id)
    assert held is not None and held.history == () and held.attempts == 0
    mine = Attempt(T0 + LEASE, "retryable", 503)
    assert await store.retry_later(fresh.id, T0 + 99, None, lease=fresh.lease, attempt=mine)
    moved = await store.get_event(fresh.id)
    assert moved is not None and moved.history == (mine,) and moved.attempts == 1
