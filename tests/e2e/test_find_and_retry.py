"""The operator's day two, through the real `serve` process and the simulator: "what happened to
user X?" (`?user=`, `events list --user`, the person in outcome lines), and "retry now" after a
fault (`waitingFor` in an event's view, `POST /admin/events/retry`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import Server, get_json, sandbox_config, start_service, start_simulator, wait_for

ADMIN_TOKEN = "find-and-retry-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRITE_KEY = "wk_find"
DAY = 86_400
# A "minute" window as long as a day: after a 429 an event waits for the next window, at UTC
# midnight, so it surely still waits when "retry now" is pressed.
LONG_WINDOW = {"GSD_RATE_MINUTE_SECONDS": str(DAY), "GSD_RATE_LIMIT_PER_MINUTE": "100000"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("find-and-retry")


@pytest.fixture(scope="module")
def servers(workdir: Path) -> Iterator[tuple[Server, Server]]:
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
    with (
        start_simulator(workdir) as sim,
        start_service(
            workdir, destinations, sim.base_url, GSD_ADMIN_TOKEN=ADMIN_TOKEN, **LONG_WINDOW
        ) as service,
    ):
        yield service, sim


def send(service: Server, kind: str, **fields: Any) -> str:
    message_id = f"{kind}-{uuid.uuid4().hex[:10]}"
    event = {"type": kind, "messageId": message_id, **fields}
    response = httpx.post(f"{service.base_url}/v1/{kind}", json=event, auth=(WRITE_KEY, ""), timeout=10)
    assert response.status_code == 200 and response.json()["stored"] == 1, response.text
    return message_id


def view(service: Server, message_id: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(service, f"/admin/events/acme/{message_id}", headers=ADMIN)
    return found


def listed(service: Server, user: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = get_json(
        service, "/admin/events", params={"user": user, "limit": 1000}, headers=ADMIN
    )["events"]
    return events


def test_a_users_events_are_found_by_user_id_anonymous_id_or_email(
    servers: tuple[Server, Server], workdir: Path
) -> None:
    service, _ = servers
    user = f"u-{uuid.uuid4().hex[:8]}"
    email = f"Find.{user}@Example.com"
    identify = send(service, "identify", userId=user, traits={"email": email})
    track = send(service, "track", userId=user, event="Ticket Closed", properties={"ticketId": "T-1"})
    anonymous = send(service, "track", anonymousId=f"anon-{user}", event="Ticket Closed")
    for message_id in (identify, track, anonymous):
        wait_for(lambda m=message_id: view(service, m)["state"] == "delivered")

    by_user = listed(service, user)
    assert [(e["messageId"], e["userId"], e["anonymousId"]) for e in by_user] == [
        (identify, user, None),
        (track, user, None),
    ]
    assert [e["messageId"] for e in listed(service, email.lower())] == [identify]
    assert [(e["messageId"], e["anonymousId"]) for e in listed(service, f"anon-{user}")] == [
        (anonymous, f"anon-{user}")
    ]
    assert listed(service, user[:-1]) == []
    too_long = httpx.get(service.base_url + "/admin/events", params={"user": "x" * 600}, headers=ADMIN)
    assert too_long.status_code == 400 and "user" in too_long.text

    cli = subprocess.run(
        [sys.executable, "-m", "destination", "events", "list", "--user", user],
        env={
            **os.environ,
            "GSD_STORE_URL": f"sqlite:///{workdir}/gsd.sqlite3",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert [json.loads(line)["messageId"] for line in cli.stdout.splitlines()] == [identify, track]

    def outcome_lines() -> dict[str, dict[str, Any]]:
        lines = [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]
        return {r["messageId"]: r for r in lines if r.get("message") == "event outcome"}

    logged = wait_for(lambda: (found := outcome_lines()) and anonymous in found and found)
    assert (logged[identify]["userId"], logged[track]["userId"]) == (user, user)
    assert logged[anonymous]["anonymousId"] == f"anon-{user}" and "userId" not in logged[anonymous]
    assert email not in service.output() and email.lower() not in service.output()  # no GSD_LOG_PII


def seconds_to_midnight() -> float:
    return DAY - time.time() % DAY


def test_retry_now_sends_an_event_waiting_for_its_backoff_and_the_one_behind_it(
    servers: tuple[Server, Server],
) -> None:
    service, sim = servers
    if seconds_to_midnight() < 300:  # the long window would end (and the backoff with it) mid-test
        time.sleep(seconds_to_midnight() + 1)
    email = f"retry-{uuid.uuid4().hex[:8]}@example.com"
    user = email.split("@")[0]
    httpx.post(sim.base_url + "/__sim/faults", json={"throttle_next": 1}, timeout=5).raise_for_status()
    identify = send(service, "identify", userId=user, traits={"email": email})
    head = wait_for(lambda: (e := view(service, identify))["attempts"] and e)
    assert head["state"] == "queued" and head["attempts"][0]["status"] == 429
    assert head["waitingFor"] == {"kind": "backoff", "until": head["nextAttemptAt"]}
    track = send(service, "track", userId=user, event="Ticket Closed", context={"traits": {"email": email}})
    behind = view(service, track)
    assert (behind["state"], behind["waitingFor"]) == ("queued", {"kind": "event", "messageId": identify})

    url = service.base_url + "/admin/events/retry"
    nothing = httpx.post(url, json={}, headers=ADMIN)
    assert nothing.json()["retried"] == 0 and "nothing selected" in nothing.json()["message"]
    assert httpx.post(url, json={"all": True, "destination": "acme"}, headers=ADMIN).status_code == 400
    assert httpx.post(url, json={"ids": [head["id"]]}).status_code == 401  # the admin token alone
    assert httpx.post(url, json={"ids": [head["id"]]}, headers=ADMIN).json() == {"retried": 1}
    for message_id in (identify, track):
        wait_for(lambda m=message_id: view(service, m)["state"] == "delivered", timeout=30)
    assert view(service, track)["waitingFor"] is None
