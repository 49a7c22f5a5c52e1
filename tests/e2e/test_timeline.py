"""Timeline activities end to end (DESIGN §3.6): the real `serve` process writing into the simulator
process over HTTP. One activity per allow-listed event through 503s, timeouts and a kill -9
mid-delivery (the simulator's duplicate-ExternalId refusal met and counted as delivered);
alsoPublish publishes once; no company → rejected; Timeline's budget apart from the sync one; a
Timeline outage does not hold up other people's events.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import (
    Server,
    get_json,
    queue_idle,
    sandbox_config,
    start_service,
    start_simulator,
    wait_for,
)
from tests.e2e.servers import stop as stop_server

ADMIN_TOKEN = "timeline-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRITE_KEY = "wk_timeline"
AUTH = (WRITE_KEY, "")
TIMELINE = {
    "author": "integration@acme.com",
    "activities": [
        {"event": "Meeting Booked", "type": "Meeting"},
        {"event": "Feature Used", "type": "Update", "alsoPublish": True},
    ],
}
DESTINATIONS = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config(timeline=TIMELINE)}]
# Short windows, so a throttled or failed call is tried again within seconds; a short call timeout,
# so that a held answer (the simulator's hang) becomes a client-side timeout quickly.
SERVICE_ENV = {
    "GSD_ADMIN_TOKEN": ADMIN_TOKEN,
    "GSD_RATE_MINUTE_SECONDS": "2",
    "GSD_GAINSIGHT_TIMEOUT_SECONDS": "2",
}
SIM_FLAGS = ("--minute-seconds", "2")


def uid() -> str:
    return uuid.uuid4().hex[:10]


def group(user: str, company: str) -> dict[str, Any]:
    return {
        "type": "group",
        "messageId": f"grp-{uid()}",
        "userId": user,
        "traits": {"name": company},
        "context": {"traits": {"email": f"{user}@example.com"}},
    }


def track(user: str, event: str = "Meeting Booked", **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": f"trk-{uid()}",
        "userId": user,
        "event": event,
        "timestamp": "2026-12-06T10:00:00.000Z",
        "properties": properties,
    }


def send(service: Server, *events: dict[str, Any]) -> None:
    response = httpx.post(service.base_url + "/v1/batch", json={"batch": list(events)}, auth=AUTH, timeout=10)
    assert response.status_code == 200, response.text


def set_faults(sim: Server, **faults: Any) -> None:
    httpx.post(sim.base_url + "/__sim/faults", json=faults, timeout=5.0).raise_for_status()


def activities(sim: Server) -> Counter[str]:
    return Counter(a["ExternalId"] for a in get_json(sim, "/__sim/activities"))


def published(sim: Server) -> Counter[str]:
    return Counter(e["jti"] for e in get_json(sim, "/__sim/events"))


def event(service: Server, message_id: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(service, f"/admin/events/acme/{message_id}", headers=ADMIN)
    return found


def state(service: Server, message_id: str) -> str:
    return str(event(service, message_id)["state"])


def endpoint_calls(sim: Server, name: str) -> int:
    counts = get_json(sim, "/__sim/counters")["endpoints"].get(name, {})
    return int(counts.get("calls", 0))


def duplicate_refusals(found: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        a
        for a in found["attempts"]
        if a["outcome"] == "delivered"
        and a["status"] == 400
        and (a.get("response") or {}).get("errorCode") == "GSTL_DUPLICATE_EXTERNAL_ID"
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("timeline")


@pytest.fixture(scope="module")
def sim(workdir: Path) -> Iterator[Server]:
    with start_simulator(workdir, *SIM_FLAGS) as server:
        yield server


@pytest.fixture(scope="module")
def service(workdir: Path, sim: Server) -> Iterator[Server]:
    with start_service(workdir, DESTINATIONS, sim.base_url, **SERVICE_ENV) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    if "service" not in request.fixturenames:  # the tests that start their own service
        yield
        return
    sim: Server = request.getfixturevalue("sim")
    service: Server = request.getfixturevalue("service")
    httpx.post(sim.base_url + "/__sim/reset", timeout=5.0).raise_for_status()
    yield
    set_faults(sim, status_next=0, timeout_next=0, server_error_next=0)
    wait_for(lambda: queue_idle(service), timeout=60)


def with_companies(service: Server, users: list[str]) -> None:
    """Each user associated with a company of their own by a group event, delivered."""
    groups = [group(user, f"Firm {user}") for user in users]
    send(service, *groups)
    wait_for(lambda: all(state(service, g["messageId"]) == "delivered" for g in groups), timeout=30)


def test_one_activity_per_event_through_503s_and_timeouts(sim: Server, service: Server) -> None:
    users = [f"u{uid()}" for _ in range(4)]
    with_companies(service, users)
    # The first three activity calls are saved but their answers held past the service's timeout
    # (the simulator's timeouts come before its status faults), the next three answer 503: the
    # retries meet the simulator's refusal of a duplicate ExternalId.
    set_faults(sim, timeout_next=3, timeout_scope="timeline", hang_seconds=3, timeout_applies=True)
    set_faults(sim, status_next=3, status=503, status_scope="timeline")
    tracks = [track(user, n=n) for n in range(3) for user in users]
    send(service, *tracks)
    ids = [t["messageId"] for t in tracks]
    wait_for(lambda: all(state(service, i) == "delivered" for i in ids), timeout=90, interval=0.5)

    assert activities(sim) == Counter(dict.fromkeys(ids, 1))  # each exactly once
    saved = {a["ExternalId"]: a for a in get_json(sim, "/__sim/activities")}
    companies = {c["Gsid"]: c["Name"] for c in get_json(sim, "/__sim/companies")}
    for sent in tracks:
        activity = saved[sent["messageId"]]
        assert companies[activity["GsCompanyId"]] == f"Firm {sent['userId']}"
        assert (activity["TypeName"], activity["Subject"]) == ("Meeting", "Meeting Booked")
        assert activity["Notes"] == f"n: {sent['properties']['n']}"
        assert activity["ActivityDate"] == 1_796_551_200_000
    faults = get_json(sim, "/__sim/counters")["endpoints"]["timeline.activity"]["faults"]
    assert faults == {"status": 3, "timeout": 3}
    refused = [d for i in ids for d in duplicate_refusals(event(service, i))]
    assert refused, "no retried insert met the duplicate refusal"
    assert all("saved by an earlier attempt" in d["error"] for d in refused)
    assert not published(sim)  # alsoPublish is false for this activity


def test_also_publish_publishes_once_and_writes_the_activity_once(sim: Server, service: Server) -> None:
    user = f"u{uid()}"
    with_companies(service, [user])
    # The publish's answer is lost once (held past the timeout: it arrived), then it fails once
    # (503): the activity is not written again, and the event reaches the Events Framework once.
    set_faults(sim, timeout_next=1, timeout_scope="events", hang_seconds=3, timeout_applies=True)
    set_faults(sim, status_next=1, status=503, status_scope="events")
    sent = track(user, "Feature Used", feature="export")
    send(service, sent)
    wait_for(lambda: state(service, sent["messageId"]) == "delivered", timeout=60, interval=0.5)

    assert activities(sim) == Counter({sent["messageId"]: 1})
    assert endpoint_calls(sim, "timeline.activity") == 1
    assert published(sim) == Counter({sent["messageId"]: 1})
    faults = get_json(sim, "/__sim/counters")["endpoints"]["events.publish"]["faults"]
    assert faults == {"status": 1, "timeout": 1}
    [body] = [e["body"] for e in get_json(sim, "/__sim/events")]
    assert body == {"feature": "export"}


def test_an_event_whose_person_has_no_company_is_rejected(sim: Server, service: Server) -> None:
    sent = track(f"lonely{uid()}")
    send(service, sent)
    wait_for(lambda: state(service, sent["messageId"]) == "rejected", timeout=30)
    assert event(service, sent["messageId"])["reason"].startswith("no company: ")
    assert not activities(sim) and endpoint_calls(sim, "timeline.activity") == 0


def test_a_timeline_outage_does_not_stop_other_peoples_events(sim: Server, service: Server) -> None:
    blocked, other = f"u{uid()}", f"u{uid()}"
    with_companies(service, [blocked, other])
    set_faults(sim, status_next=1000, status=503, status_scope="timeline")
    stuck, behind = track(blocked), group(blocked, "Later Inc")
    send(service, stuck, behind)
    wait_for(lambda: endpoint_calls(sim, "timeline.activity") >= 1, timeout=30)
    others = [group(other, "Other Inc"), track(other, "Ticket Closed", ticket="T-1")]
    send(service, *others)
    wait_for(lambda: all(state(service, e["messageId"]) == "delivered" for e in others), timeout=30)
    # The blocked person's later event waits behind their activity (their order), nothing more.
    assert state(service, stuck["messageId"]) in ("queued", "leased")
    assert state(service, behind["messageId"]) in ("queued", "leased")
    set_faults(sim, status_next=0)
    wait_for(lambda: state(service, behind["messageId"]) == "delivered", timeout=60, interval=0.5)
    assert activities(sim) == Counter({stuck["messageId"]: 1})


def test_timeline_calls_do_not_spend_the_sync_budget(tmp_path: Path) -> None:
    """Sync budget 5 per (day-long) window, of which the governor spends 4 away from the window's
    edges, Timeline 40: a group (3 sync calls: search, insert, person upsert), then 12 activities
    and one publish. Were activities counted in the sync window, one more call at most would pass
    in this window, and the test would time out."""
    window = 86_400.0  # a "minute" as long as a UTC day: this test never sees a window reset
    if window - time.time() % window < 120:  # ... unless it starts in the last two minutes
        time.sleep(window - time.time() % window + 1)
    env = {
        "GSD_ADMIN_TOKEN": ADMIN_TOKEN,
        "GSD_RATE_MINUTE_SECONDS": str(window),
        "GSD_RATE_LIMIT_PER_MINUTE": "5",
        "GSD_TIMELINE_RATE_LIMIT_PER_MINUTE": "40",
    }
    flags = (
        "--minute-seconds",
        str(window),
        "--rate-limit-per-minute",
        "5",
        "--timeline-rate-limit-per-minute",
        "40",
    )
    with (
        start_simulator(tmp_path, *flags) as sim,
        start_service(tmp_path, DESTINATIONS, sim.base_url, **env) as service,
    ):
        user = f"u{uid()}"
        with_companies(service, [user])
        tracks = [track(user, n=n) for n in range(12)]
        publish = track(f"p{uid()}", "Ticket Closed")
        send(service, *tracks, publish)
        ids = [t["messageId"] for t in [*tracks, publish]]
        wait_for(lambda: all(state(service, i) == "delivered" for i in ids), timeout=60, interval=0.5)
        counters = get_json(sim, "/__sim/counters")
    assert counters["endpoints"]["timeline.activity"]["calls"] == 12
    assert counters["total"]["throttled"] == 0 and counters["over_budget_accepted"] == 0
    sync = counters["total"]["calls"] - 12
    assert sync == 4  # the group's three calls and the publish: the whole sync window


def test_kill_9_while_an_activity_is_in_flight_writes_it_once(tmp_path: Path) -> None:
    """The activity is saved but its answer is held; the service is killed meanwhile. After the
    restart (once the dead process's lease has run out) the insert is retried, meets the duplicate
    refusal, and the event is delivered: one activity."""
    with start_simulator(tmp_path, *SIM_FLAGS) as sim:
        patient = {**SERVICE_ENV, "GSD_GAINSIGHT_TIMEOUT_SECONDS": "60"}  # never gives up first
        with start_service(tmp_path, DESTINATIONS, sim.base_url, **patient) as running:
            user = f"u{uid()}"
            with_companies(running, [user])
            set_faults(sim, timeout_next=1, timeout_scope="timeline", hang_seconds=25, timeout_applies=True)
            sent = track(user, agenda="renewal")
            send(running, sent)
            wait_for(lambda: activities(sim)[sent["messageId"]] == 1, timeout=30)
            assert state(running, sent["messageId"]) == "leased"  # its answer is still on its way
            stop_server(running, signal.SIGKILL)
        with start_service(tmp_path, DESTINATIONS, sim.base_url, **SERVICE_ENV) as restarted:
            wait_for(lambda: state(restarted, sent["messageId"]) == "delivered", timeout=60, interval=0.5)
            found = event(restarted, sent["messageId"])
        assert activities(sim) == Counter({sent["messageId"]: 1})
    assert len(duplicate_refusals(found)) == 1
