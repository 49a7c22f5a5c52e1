"""Sandbox mode in process: the embedded simulator, unless GSD_GAINSIGHT_BASE_URL says otherwise."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from destination.sandbox import sandbox_destination
from destination.settings import Settings
from tests.conftest import memory_app
from tests.e2e.servers import wait_for

LOOPBACK = "http://127.0.0.1"  # sandbox mode answers loopback Hosts only
IDENTIFY = {"userId": "ada", "traits": {"email": "ada@example.com", "seats": 3}}


def test_sandbox_delivers_to_the_embedded_simulator() -> None:
    with TestClient(memory_app(Settings()), base_url=LOOPBACK) as client:
        assert client.post("/v1/identify", json=IDENTIFY).status_code == 200
        people = wait_for(lambda: client.get("/gainsight/__sim/people").json())
    assert people[0]["Email"] == "ada@example.com" and people[0]["Seats__gc"] == 3


def test_explicit_base_url_wins_over_the_embedded_simulator() -> None:
    seen: list[httpx.Request] = []

    def elsewhere(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": True})

    settings = Settings(gainsight_base_url="http://gainsight.test:9999")
    app = memory_app(settings, transport=httpx.MockTransport(elsewhere))
    with TestClient(app, base_url=LOOPBACK) as client:
        assert client.post("/v1/identify", json=IDENTIFY).status_code == 200
        wait_for(lambda: seen)
        assert client.get("/gainsight/__sim/people").json() == []
    assert seen[0].url.host == "gainsight.test" and seen[0].url.path == "/v1.0/api/people"


def test_sandbox_destination_maps_every_sandbox_event_and_custom_field() -> None:
    config = sandbox_destination().config
    assert set(config.event_names.values()) == {"ticket_closed", "feature_used", "order_completed"}
    assert set(config.event_names) == set(config.event_versions)
    assert set(config.person_fields.values()) == {"Seats__gc", "Plan__gc"}
    assert set(config.company_fields.values()) == {"Region__gc", "Tier__gc"}


def test_ready_reports_queue_and_delivery() -> None:
    with TestClient(memory_app(Settings()), base_url=LOOPBACK) as client:
        body = client.get("/ready").json()
        assert body["status"] == "ready" and body["problems"] == [] and body["destinations"] == 1
        client.app.state.runtime.worker.cancel()  # type: ignore[attr-defined]
        wait_for(lambda: client.get("/ready").status_code == 503)
        assert client.get("/ready").json()["problems"] == ["delivery loop is not running"]


def test_sandbox_counts_usage_and_shows_the_row_arriving() -> None:
    group = {
        "userId": "ada",
        "traits": {"name": "Acme Ltd"},
        "context": {"traits": {"email": "ada@example.com"}},
    }
    counted = {"userId": "ada", "event": "Report Exported", "timestamp": "2026-12-06T10:00:00Z"}
    with TestClient(memory_app(Settings()), base_url=LOOPBACK) as client:
        assert client.post("/v1/group", json=group).status_code == 200
        [company] = wait_for(lambda: client.get("/gainsight/__sim/companies").json())
        for _ in range(2):
            assert client.post("/v1/track", json=counted).status_code == 200
        usage = "/gainsight/__sim/objects/ProductUsage__gc"
        rows = wait_for(lambda: [r for r in client.get(usage).json() if r["Count__gc"] == 2], timeout=60)
    assert [(r["Company__gc"], r["UsageDate__gc"], r["Metric__gc"]) for r in rows] == [
        (company["Gsid"], "2026-12-06", "Report Exported")
    ]


def test_sandbox_writes_a_meeting_booked_track_as_a_timeline_activity() -> None:
    group = {"userId": "ada", "traits": {"name": "Acme"}, "context": {"traits": {"email": "ada@example.com"}}}
    meeting = {
        "userId": "ada",
        "event": "Meeting Booked",
        "timestamp": "2026-12-06T10:00:00Z",
        "properties": {"with": "Grace"},
    }
    with TestClient(memory_app(Settings()), base_url=LOOPBACK) as client:
        assert client.post("/v1/group", json=group).status_code == 200
        assert client.post("/v1/track", json=meeting).status_code == 200
        [activity] = wait_for(lambda: client.get("/gainsight/__sim/activities").json())
        [company] = client.get("/gainsight/__sim/companies").json()
    assert (activity["TypeName"], activity["Notes"]) == ("Meeting", "with: Grace")
    assert activity["GsCompanyId"] == company["Gsid"]
