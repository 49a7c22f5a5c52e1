"""What a queued event waits for (`waitingFor` in its view): the event ahead, the budget, a backoff."""

from __future__ import annotations

import pytest

from destination.delivery.governor import RateWindow
from destination.delivery.memory import MemoryStore
from destination.delivery.store import Attempt, StoredEvent
from destination.delivery.waiting import waiting_for
from tests.delivery.conftest import T0, claim_events, event

pytestmark = pytest.mark.anyio

TENANT = "acme.gainsightcloud.com"
WINDOWS = (RateWindow("minute", 60, 10), RateWindow("day", 86_400, 1000))
MINUTE_END = WINDOWS[0].end(T0)


async def view_of(store: MemoryStore, message_id: str) -> StoredEvent:
    (found,) = await store.find_events(message_id)
    return found


async def test_an_event_behind_its_persons_failing_head_waits_for_that_event() -> None:
    store = MemoryStore()
    await store.enqueue([event("identify-1", "ada", kind="identify"), event("track-2", "ada")])
    head, behind = await claim_events(store, T0, 1)  # a claim takes the person's due events
    failed = Attempt(T0, "retryable", 503, "unavailable")
    assert await store.retry_later(head.id, T0 + 95, None, lease=head.lease, attempt=failed)
    assert await store.retry_later(behind.id, T0, None, lease=behind.lease)  # back, untried

    track = await view_of(store, "track-2")
    assert await waiting_for(store, track, T0 + 1, TENANT, WINDOWS) == {
        "kind": "event",
        "messageId": "identify-1",
    }
    identify = await view_of(store, "identify-1")
    assert await waiting_for(store, identify, T0 + 1, TENANT, WINDOWS) == {
        "kind": "backoff",
        "until": "2023-11-14T22:14:55.000Z",  # T0 + 95
    }
    assert await waiting_for(store, identify, T0 + 95, TENANT, WINDOWS) is None  # due: a worker takes it
    assert await waiting_for(store, identify, T0 + 1, None, WINDOWS) == {
        "kind": "backoff",
        "until": "2023-11-14T22:14:55.000Z",
    }


async def test_a_spent_budget_is_what_an_event_waits_for_whatever_its_own_retry_time() -> None:
    store = MemoryStore()
    await store.enqueue([event("t1", "ada")])
    # 9 calls: the minute's limit (10) less the governor's margin (1) away from the window's edges
    assert await store.take_budget(TENANT, [("minute", WINDOWS[0].start(T0), 10)], 9) is None
    queued = await view_of(store, "t1")
    assert await waiting_for(store, queued, T0, TENANT, WINDOWS) == {
        "kind": "budget",
        "until": "2023-11-14T22:14:00.000Z",  # the minute's end
    }
    assert MINUTE_END == T0 + 40
    assert await waiting_for(store, queued, T0, "other.gainsightcloud.com", WINDOWS) is None
    assert await waiting_for(store, queued, T0, None, WINDOWS) is None  # budget not known here
    assert await waiting_for(store, queued, MINUTE_END, TENANT, WINDOWS) is None  # a new minute


async def test_an_event_in_flight_or_finished_waits_for_nothing() -> None:
    store = MemoryStore()
    await store.enqueue([event("t1", "ada")])
    (claimed,) = await claim_events(store, T0, 1)
    assert await waiting_for(store, await view_of(store, "t1"), T0, TENANT, WINDOWS) is None
    assert await store.complete(claimed.id, "delivered", lease=claimed.lease)
    assert await waiting_for(store, await view_of(store, "t1"), T0, TENANT, WINDOWS) is None
