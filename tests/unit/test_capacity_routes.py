"""GET /admin/capacity and the capacity gauges, on facts put in the store (DESIGN §6)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.delivery.memory import MemoryStore
from destination.delivery.store import Attempt, NewEvent
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

TOKEN = "t0ken"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
KEYS = {
    "destination",
    "arrivalPerMinute",
    "callsPerEvent",
    "callsNeededPerDay",
    "dailyBudget",
    "fits",
    "backlogEvents",
    "backlogClearsInSeconds",
    "backlogGrowthPerDay",
    "dailyCapReachedAt",
    "oldestQueuedAgeSeconds",
    "agingOutAt",
    "byEvent",
}


def _no_gainsight() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")

    return httpx.MockTransport(refuse)


def track(destination: str, n: int, at: float, name: str = "Report Exported") -> NewEvent:
    payload = orjson.dumps({"type": "track", "event": name, "userId": f"u{n % 10}", "messageId": f"m{n}"})
    return NewEvent(destination, f"m{n}", f"userId:u{n % 10}", "track", payload, at)


async def traffic(store: MemoryStore) -> None:
    """`loud`: 100 tracks in the last hour (2,400 a day, a call each, against 1,000 a day);
    `quiet`: one identify, delivered on a call of its own."""
    now = time.time()
    await store.enqueue([track("loud", n, now - 1800 + n) for n in range(100)])
    quiet = orjson.dumps({"type": "identify", "userId": "q", "messageId": "q1"})
    await store.enqueue([NewEvent("quiet", "q1", "userId:q", "identify", quiet, now - 60)])
    [claim] = [c for c in await store.claim(now, 100, 30.0) if c.events[0].destination_id == "quiet"]
    done = Attempt(now, "delivered", 200, call="c1")
    assert await store.complete(claim.events[0].id, "delivered", lease=claim.lease, attempt=done)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "destinations.json"
    destinations = [
        {"id": "loud", "config": {**BASE_CONFIG, "domain": "loud.gainsightcloud.com"}},
        {"id": "quiet", "config": {**BASE_CONFIG, "domain": "quiet.gainsightcloud.com"}},
    ]
    path.write_bytes(orjson.dumps(destinations))
    settings = Settings(destinations=path, admin_token=TOKEN, rate_limit_per_day=1000)
    with TestClient(memory_app(settings, transport=_no_gainsight()), base_url="http://127.0.0.1") as c:
        c.app.state.runtime.worker.cancel()  # type: ignore[attr-defined]  # nothing delivered
        c.portal.call(traffic, c.app.state.runtime.store)  # type: ignore[attr-defined]
        yield c


def test_capacity_says_does_not_fit_for_the_loud_destination_and_fits_for_the_quiet_one(
    client: TestClient,
) -> None:
    response = client.get("/admin/capacity", headers=ADMIN)
    assert response.status_code == 200
    loud, quiet = response.json()["destinations"]
    assert set(loud) == KEYS and set(quiet) == KEYS
    assert loud["destination"] == "loud"
    assert loud["fits"] is False
    assert loud["callsNeededPerDay"] == 2400  # 100 in the last hour, a call each (not measured yet)
    assert loud["dailyBudget"] == 1000
    assert loud["backlogEvents"] == 100
    assert loud["backlogClearsInSeconds"] is None
    assert loud["backlogGrowthPerDay"] == 1400  # 2,400 arrive, 1,000 go
    assert 1790 <= loud["oldestQueuedAgeSeconds"] <= 1900
    assert loud["byEvent"] == [
        {
            "type": "track",
            "event": "Report Exported",
            "eventsPerDay": 2400.0,
            "callsPerDay": 2400.0,
            "lever": "usage",
        }
    ]
    assert quiet["fits"] is True
    assert quiet["callsPerEvent"] == 1.0  # measured: one call for one identify
    assert quiet["backlogEvents"] == 0
    assert quiet["backlogClearsInSeconds"] == 0
    assert quiet["agingOutAt"] is None
    assert quiet["byEvent"][0]["lever"] is None


def test_one_destination_and_the_admin_token(client: TestClient) -> None:
    one = client.get("/admin/capacity/quiet", headers=ADMIN)
    assert one.status_code == 200 and one.json()["destination"] == "quiet" and one.json()["fits"]
    assert client.get("/admin/capacity/nobody", headers=ADMIN).status_code == 404
    assert client.get("/admin/capacity").status_code == 401
    assert client.get("/admin/capacity/quiet", headers={"Authorization": "Bearer wrong"}).status_code == 401
    documented = client.get("/openapi.json").json()["paths"]
    assert set(documented["/admin/capacity"]["get"]["responses"]) >= {"200", "401"}
    assert "/admin/capacity/{destination_id}" in documented


def test_the_gauges_say_the_same(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'gsd_calls_needed_per_day{destination="loud"} 2400.0' in text
    assert 'gsd_backlog_clear_seconds{destination="loud"} +Inf' in text
    assert 'gsd_backlog_clear_seconds{destination="quiet"} 0.0' in text


def test_status_shows_the_forecast_and_its_charts_without_outside_assets(client: TestClient) -> None:
    page = client.get("/status", headers=ADMIN)
    assert page.status_code == 200
    html = page.text
    loud = html[html.index('id="destination-loud"') : html.index('id="destination-quiet"')]
    quiet = html[html.index('id="destination-quiet"') :]
    assert "does not fit the daily budget" in loud and "grows by 1,400 a day" in loud
    assert "fits the daily budget" in quiet and "does not fit" not in quiet
    for chart in ("loud-calls", "loud-finished", "loud-backlog"):
        assert f'<svg class="chart" id="{chart}" role="img"' in loud
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in loud
    assert "2,400 events queued" not in loud and "100 events queued now; it grows by 1,400 a day" in loud
    assert "budget 100/min" in loud  # the per-minute budget line
    assert "1 delivered" in quiet  # the finished chart's description
    sources = [part.split('"')[1] for part in html.split("src=")[1:]] + [
        part.split('"')[1] for part in html.split("href=")[1:]
    ]
    assert all(not s.startswith(("http:", "https:", "//")) for s in sources)
