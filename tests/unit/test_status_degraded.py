"""When /status and gsd_destination_degraded call a destination degraded: a fresh dead letter, or
its newest Gainsight answers all failures (decisions made here neither count nor end a run)."""

from __future__ import annotations

import pytest

from destination.delivery.memory import MemoryStore
from destination.delivery.store import Attempt, AttemptRecord
from destination.status import HOUR, consecutive_failures, degraded_destinations, is_degraded
from tests.delivery.conftest import T0, FakeClock, claim_events, event

pytestmark = pytest.mark.anyio


def records(*outcomes: str) -> list[AttemptRecord]:
    """Attempts of one destination, newest first."""
    return [AttemptRecord(i, "acme", f"m{i}", "track", Attempt(T0, o)) for i, o in enumerate(outcomes)]  # type: ignore[arg-type]


def test_failures_count_back_to_the_newest_delivery() -> None:
    assert consecutive_failures(records("aborted", "retryable", "throttled", "delivered", "aborted")) == 3
    assert consecutive_failures(records("delivered", "aborted", "aborted", "aborted")) == 0
    # filtered, rejected and unchanged made no call: they neither count nor end the run
    assert consecutive_failures(records("aborted", "filtered", "rejected", "unchanged", "aborted")) == 2
    assert consecutive_failures([]) == 0


def test_degraded_by_three_failures_in_a_row_or_a_fresh_dead_letter() -> None:
    assert is_degraded(records("aborted", "filtered", "aborted", "filtered", "retryable"), 0)
    assert not is_degraded(records("aborted", "aborted", "delivered", "aborted"), 0)
    assert is_degraded(records("delivered", "filtered"), 1)  # two fresh dead letters once stayed "ok"
    assert not is_degraded([], 0)


async def test_dead_letters_of_the_last_hour_make_a_destination_degraded_until_replayed() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    await store.enqueue([event("a1", "ada"), event("b1", "bob"), event("g1", "cy", destination="globex")])
    for claimed in await claim_events(store, T0, 3):
        if claimed.destination_id == "acme":
            assert await store.dead_letter(claimed.id, "refused", lease=claimed.lease)
        else:
            assert await store.complete(claimed.id, "delivered", lease=claimed.lease)
    assert await degraded_destinations(store, ["acme", "globex"], T0) == {"acme": True, "globex": False}
    assert await degraded_destinations(store, ["acme"], T0 + HOUR + 1) == {"acme": False}  # not fresh
    assert await store.replay_dead_letters(destination_id="acme") == 2
    assert await degraded_destinations(store, ["acme"], T0) == {"acme": False}
