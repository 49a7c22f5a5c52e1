"""Fixed-window budget per tenant: 100/minute and 50,000/day by default, 429 GU_2400 beyond."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from destination.simulator import Simulator, SimulatorConfig
from destination.simulator.ratelimit import BudgetAudit, RateLimiter
from tests.simulator.helpers import ACCESS, EVENTS, PEOPLE, QUERY, T0, FakeClock, event_headers, sim_client

THROTTLED = {
    "result": False,
    "errorCode": "GU_2400",
    "errorDesc": "Too many request",
    "data": None,
    "message": None,
}


def ping(client: TestClient) -> int:
    status: int = client.get(PEOPLE, headers=ACCESS).status_code
    return status


def test_exactly_100_calls_pass_then_429_with_gainsights_body(client: TestClient, sim: Simulator) -> None:
    assert [ping(client) for _ in range(100)] == [200] * 100
    response = client.get(PEOPLE, headers=ACCESS)
    assert response.status_code == 429
    body = response.json()
    assert uuid.UUID(body.pop("requestId")).version == 4
    assert body == THROTTLED
    assert "retry-after" not in response.headers
    counters = sim.counters_view()
    assert counters["endpoints"]["people.ping"]["throttled"] == 1
    assert counters["over_budget_accepted"] == 0


def test_next_minute_window_passes_again(clock: FakeClock, client: TestClient) -> None:
    for _ in range(100):
        ping(client)
    clock.advance(59.999)
    assert ping(client) == 429
    clock.advance(0.001)  # the window boundary, not 60 s after the first call
    assert [ping(client) for _ in range(100)] == [200] * 100
    assert ping(client) == 429


def test_windows_are_aligned_to_the_boundary_not_to_the_first_call() -> None:
    clock = FakeClock(T0 + 50)
    with sim_client(SimulatorConfig.sandbox(rate_limit_per_minute=2), clock) as client:
        assert [ping(client), ping(client), ping(client)] == [200, 200, 429]
        clock.advance(10)  # T0 + 60: a new minute although only 10 s passed
        assert ping(client) == 200


def test_every_endpoint_kind_draws_on_the_same_budget() -> None:
    with sim_client(SimulatorConfig.sandbox(rate_limit_per_minute=3)) as client:
        assert client.get(PEOPLE, headers=ACCESS).status_code == 200
        assert client.post(QUERY, headers=ACCESS, json={"select": ["Name"]}).status_code == 200
        assert client.post(EVENTS, headers=event_headers(), json={"a": 1}).status_code == 200
        assert client.post(EVENTS, headers=event_headers(), json={"a": 1}).status_code == 429
        assert client.get("/__sim/counters").status_code == 200  # admin routes are free


def test_unauthenticated_calls_count_too() -> None:
    with sim_client(SimulatorConfig.sandbox(rate_limit_per_minute=1)) as client:
        assert client.get(PEOPLE).status_code == 401
        assert ping(client) == 429


def test_day_window_limits_across_minutes_and_resets_at_utc_midnight(clock: FakeClock) -> None:
    with sim_client(SimulatorConfig.sandbox(rate_limit_per_day=5), clock) as client:
        for minute in range(5):
            clock.now = T0 + minute * 60
            assert ping(client) == 200
        clock.now = T0 + 3600
        assert ping(client) == 429
        clock.now = T0 + 86_400 - 0.001
        assert ping(client) == 429
        clock.now = T0 + 86_400
        assert ping(client) == 200


def test_short_windows_for_fast_tests(clock: FakeClock) -> None:
    config = SimulatorConfig.sandbox(
        rate_limit_per_minute=2, minute_seconds=2, rate_limit_per_day=4, day_seconds=10
    )
    with sim_client(config, clock) as client:
        assert [ping(client) for _ in range(3)] == [200, 200, 429]
        clock.advance(2)
        assert [ping(client), ping(client)] == [200, 429]  # the "day" allows 4 in all, 429s included
        clock.advance(8)
        assert ping(client) == 200


def test_retry_after_switch_gives_seconds_to_the_window_end(clock: FakeClock) -> None:
    clock.now = T0 + 12.5
    with sim_client(
        SimulatorConfig.sandbox(rate_limit_per_minute=1, retry_after_header=True), clock
    ) as client:
        ping(client)
        response = client.get(PEOPLE, headers=ACCESS)
    assert response.status_code == 429 and response.headers["retry-after"] == "48"


def test_rejected_calls_use_up_budget_by_default(clock: FakeClock) -> None:
    with sim_client(SimulatorConfig.sandbox(rate_limit_per_minute=2, rate_limit_per_day=4), clock) as client:
        assert [ping(client) for _ in range(4)] == [200, 200, 429, 429]
        clock.advance(60)
        assert ping(client) == 429  # the day's 4 were spent, two of them on rejected calls


def test_rejected_calls_can_be_free_by_switch(clock: FakeClock) -> None:
    config = SimulatorConfig.sandbox(
        rate_limit_per_minute=2, rate_limit_per_day=4, count_rejected_calls=False
    )
    with sim_client(config, clock) as client:
        assert [ping(client) for _ in range(4)] == [200, 200, 429, 429]
        clock.advance(60)
        assert [ping(client) for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("count_rejected", [True, False])
def test_no_call_is_ever_accepted_over_budget(clock: FakeClock, count_rejected: bool) -> None:
    config = SimulatorConfig.sandbox(
        rate_limit_per_minute=7, rate_limit_per_day=40, count_rejected_calls=count_rejected
    )
    with sim_client(config, clock) as client:
        accepted_per_minute: dict[int, int] = {}
        statuses = []
        for _ in range(120):
            clock.advance(3.7)
            statuses.append(ping(client))
            if statuses[-1] == 200:
                minute = int(clock.now // 60)
                accepted_per_minute[minute] = accepted_per_minute.get(minute, 0) + 1
        counters = client.get("/__sim/counters").json()
    assert max(accepted_per_minute.values()) == 7
    assert statuses.count(200) <= 40
    if not count_rejected:
        assert statuses.count(200) == 40  # enough minutes to spend the whole day's budget
    assert counters["over_budget_accepted"] == 0
    assert counters["total"]["throttled"] == statuses.count(429)


def test_budget_audit_catches_calls_admitted_beyond_the_limit() -> None:
    limiter = RateLimiter(per_minute=2, per_day=100)
    audit = BudgetAudit(limiter)
    for _ in range(3):  # as a broken limiter would: admitted without asking it
        audit.admitted(T0)
    assert audit.over_budget == 1
    audit.admitted(T0 + 60)
    assert audit.over_budget == 1


@pytest.mark.parametrize("count_rejected", [True, False])
def test_default_daily_limit_is_50000(count_rejected: bool) -> None:
    limiter = RateLimiter(per_minute=10**9, per_day=50_000, count_rejected=count_rejected)
    admitted = sum(limiter.admit(T0 + i * 1e-4).allowed for i in range(50_001))
    assert admitted == 50_000
    assert limiter.admit(T0 + 86_400).allowed


def test_default_config_is_100_per_minute_and_50000_per_day() -> None:
    config = SimulatorConfig()
    assert (config.rate_limit_per_minute, config.rate_limit_per_day) == (100, 50_000)
    assert (config.minute_seconds, config.day_seconds) == (60, 86_400)
