"""The store's reads for the capacity forecast (capacity_views.py). Every backend."""

from __future__ import annotations

import pytest

from destination.delivery.capacity_views import Arrival, CallCost
from destination.delivery.store import Attempt, NewEvent, Store
from tests.delivery.conftest import T0, FakeClock, claim_events

pytestmark = pytest.mark.anyio


def arrived(
    message_id: str, kind: str, at: float, name: str | None = None, person: str = "userId:u1"
) -> NewEvent:
    named = b',"event":"%s"' % name.encode() if name is not None else b""
    payload = b'{"type":"%s","messageId":"%s"%s}' % (kind.encode(), message_id.encode(), named)
    return NewEvent("acme", message_id, person, kind, payload, at)


async def test_arrivals_count_stored_events_since_and_mix_the_newest(store: Store) -> None:
    await store.enqueue(
        [
            arrived("old", "track", T0 - 7200, "Report Exported"),
            arrived("t1", "track", T0 - 300, "Report Exported"),
            arrived("t2", "track", T0 - 200, "Report Exported", person="anonymousId:a1"),
            arrived("i1", "identify", T0 - 100),
            arrived("p1", "track", T0 - 50, "Page Viewed", person="anonymousId:a1"),
            NewEvent("globex", "g1", "userId:u1", "track", b'{"event":"Other"}', T0 - 10),
        ]
    )
    assert await store.enqueue([arrived("t1", "track", T0 - 40, "Report Exported")]) == [False]

    found = await store.arrivals("acme", T0 - 3600, 100)
    assert found.total == 4
    assert sorted(found.sample, key=lambda a: (a.kind, a.event or "")) == [
        Arrival("identify", None, 1, 0),
        Arrival("track", "Page Viewed", 1, 1),
        Arrival("track", "Report Exported", 2, 1),
    ]
    newest = await store.arrivals("acme", T0 - 3600, 2)
    assert newest.total == 4
    assert sorted((a.kind, a.event, a.events) for a in newest.sample) == [
        ("identify", None, 1),
        ("track", "Page Viewed", 1),
    ]
    assert (await store.arrivals("nobody", T0 - 3600, 100)).total == 0
    assert await store.arrival_histogram("acme", T0 - 7200, 3600.0) == {0: 1, 1: 4}
    assert await store.arrival_histogram("acme", T0 - 250, 100.0) == {0: 1, 1: 1, 2: 1}


async def test_call_costs_split_a_shared_call_among_its_events(store: Store, clock: FakeClock) -> None:
    await store.enqueue(
        [
            arrived("i1", "identify", T0 - 30),
            arrived("i2", "identify", T0 - 29),
            arrived("t1", "track", T0 - 28, "Report Exported"),
            arrived("t2", "track", T0 - 27, "Report Exported"),
            arrived("q1", "track", T0 - 26, "Report Exported", person="userId:u2"),
        ]
    )
    claimed = {e.message_id: e for e in await claim_events(store, T0, 10)}
    assert set(claimed) == {"i1", "i2", "t1", "t2", "q1"}

    async def finish(message_id: str, call: str | None) -> None:
        e = claimed[message_id]
        outcome = "delivered" if call else "unchanged"
        attempt = Attempt(clock.now, outcome, 200 if call else None, call=call)
        assert await store.complete(e.id, outcome, lease=e.lease, attempt=attempt)

    await finish("i1", "upsert-1")
    await finish("i2", "upsert-1")  # one Person upsert for the run
    e = claimed["t1"]  # a retried publish: two calls
    assert await store.retry_later(
        e.id, T0, None, lease=e.lease, attempt=Attempt(T0, "retryable", 503, call="pub-1")
    )
    claimed["t1"] = (await claim_events(store, T0 + 1, 10))[0]
    await finish("t1", "pub-2")
    claimed.update({e.message_id: e for e in await claim_events(store, T0 + 1, 10)})
    await finish("t2", "pub-3")

    costs = await store.call_costs("acme", T0 - 3600, 100)
    assert sorted(costs, key=lambda c: c.kind) == [
        CallCost("identify", None, 2, pytest.approx(1.0)),
        CallCost("track", "Report Exported", 2, pytest.approx(3.0)),
    ]
    assert await store.oldest_unfinished("acme") == T0 - 26  # q1, still leased
    assert await store.call_costs("acme", T0 + 3600, 100) == []


async def test_oldest_unfinished_and_finished_by_hour(store: Store, clock: FakeClock) -> None:
    assert await store.oldest_unfinished("acme") is None
    await store.enqueue(
        [arrived("a", "track", T0 - 500, "X"), arrived("b", "track", T0 - 400, "X", "userId:u2")]
    )
    assert await store.oldest_unfinished("acme") == T0 - 500
    first = (await claim_events(store, T0, 1))[0]
    assert await store.complete(
        first.id, "delivered", lease=first.lease, attempt=Attempt(T0, "delivered", 200)
    )
    assert await store.oldest_unfinished("acme") == T0 - 400
    clock.now = T0 + 3600
    second = (await claim_events(store, clock.now, 1))[0]
    assert await store.dead_letter(second.id, "gave up", lease=second.lease)
    assert await store.oldest_unfinished("acme") is None
    assert await store.finished_histogram("acme", T0 - 10, 3600.0) == {(0, "delivered"): 1, (1, "dead"): 1}
    assert await store.finished_histogram("acme", T0 + 1, 3600.0) == {(0, "dead"): 1}


async def test_calls_history_is_the_governor_count_by_window(store: Store) -> None:
    for start, calls in ((T0 - 120, 2), (T0 - 60, 3), (T0 - 7200, 1)):
        for _ in range(calls):
            assert await store.take_budget("acme.gainsightcloud.com", [("minute", start, 100)]) is None
    assert await store.take_budget("other", [("minute", T0 - 60, 100)]) is None
    found = await store.calls_history("acme.gainsightcloud.com", "minute", T0 - 3600)
    assert found == {T0 - 120: 2, T0 - 60: 3}
