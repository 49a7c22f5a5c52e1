"""Per-person order end to end (DESIGN §5): the real `serve` process delivering into the simulator
process over HTTP, with a slow People API. SDKs send identify with an email and track with only the
userId; a group's traits.email is the company's address. Each person's events must reach Gainsight
in the order sent, however many people are interleaved: a track goes only once the upserts before
it are answered, and an upsert only once the tracks before it are.
"""

from __future__ import annotations

import uuid
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

WRITE_KEY = "wk_order"
PEOPLE_LATENCY = 0.3  # seconds each People upsert takes; tracks and company calls are fast
USERS = 12


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("order-sim")
    with start_simulator(workdir, "--minute-seconds", "2", "--rate-limit-per-minute", "200") as server:
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sim: Server) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("order-service")
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
    with start_service(
        workdir, destinations, sim.base_url, GSD_RATE_MINUTE_SECONDS="2", GSD_RATE_LIMIT_PER_MINUTE="200"
    ) as server:
        yield server


def person_events(user: str, email: str, tag: str) -> list[dict[str, Any]]:
    """identify(email) → group (the company's own email in its traits) → track (userId only) →
    identify → track, as an SDK sends them."""

    def message(kind: str, **body: Any) -> dict[str, Any]:
        return {"type": kind, "messageId": f"{kind}-{uuid.uuid4().hex[:12]}", "userId": user, **body}

    company = f"Co {tag}"
    return [
        message("identify", traits={"email": email, "plan": "v1"}),
        message(
            "group",
            traits={"name": company, "email": f"billing@{tag}.example.com"},
            context={"traits": {"email": email}},
        ),
        message("track", event="Ticket Closed", properties={"user": user, "n": 1}),
        message("identify", traits={"email": email, "plan": "v2"}),
        message("track", event="Ticket Closed", properties={"user": user, "n": 2}),
    ]


def ms(seconds: float) -> int:
    """The simulator's record times (CreatedDate, ModifiedDate) are its clock in whole ms."""
    return int(seconds * 1000)


def test_each_person_s_events_arrive_in_order_with_a_slow_people_api(
    sim: Server, service: Server, tmp_path: Path
) -> None:
    httpx.post(
        sim.base_url + "/__sim/faults",
        json={"latency_seconds": PEOPLE_LATENCY, "latency_scope": "people"},
        timeout=5.0,
    ).raise_for_status()
    tag = uuid.uuid4().hex[:6]
    users = {f"user-{tag}-{i}": f"p{i}-{tag}@example.com" for i in range(USERS)}
    sequences = [person_events(user, email, f"{tag}{i}") for i, (user, email) in enumerate(users.items())]
    interleaved = [events[step] for step in range(5) for events in sequences]  # every user's step 1, …
    for start in range(0, len(interleaved), 20):
        answer = httpx.post(
            service.base_url + "/v1/batch",
            json={"batch": interleaved[start : start + 20]},
            auth=(WRITE_KEY, ""),
            timeout=10.0,
        )
        assert answer.status_code == 200 and answer.json()["stored"] == 20, answer.text

    def everything_arrived() -> bool:
        people = {p["Email"]: p for p in get_json(sim, "/__sim/people")}
        done = [people.get(email, {}).get("Plan__gc") == "v2" for email in users.values()]
        return all(done) and len(get_json(sim, "/__sim/events")) == 2 * USERS and queue_idle(service)

    wait_for(everything_arrived, timeout=90)
    people = {p["Email"]: p for p in get_json(sim, "/__sim/people")}
    companies = {c["Gsid"]: c["Name"] for c in get_json(sim, "/__sim/companies")}
    tracks: dict[str, list[tuple[int, float]]] = {}
    for received in get_json(sim, "/__sim/events"):
        tracks.setdefault(received["body"]["user"], []).append(
            (received["body"]["n"], received["received_at"])
        )
    for i, (user, email) in enumerate(users.items()):
        person = people[email]
        assert [companies[link["Company_ID"]] for link in person["companies"]] == [f"Co {tag}{i}"]
        (first, at_first), (second, at_second) = sorted(tracks[user], key=lambda t: t[1])
        assert (first, second) == (1, 2), f"{user}'s tracks arrived out of order"
        # identify + group (one upsert) → track 1 → identify → track 2, each after the one before.
        assert person["CreatedDate"] <= ms(at_first), f"{user}'s first track overtook the upsert"
        assert ms(at_first) <= person["ModifiedDate"] <= ms(at_second), (
            f"{user}'s second upsert is out of order"
        )
    assert all(c.startswith("Co ") for c in companies.values()) and len(companies) == USERS
