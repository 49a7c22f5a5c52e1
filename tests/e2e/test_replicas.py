"""Replicas (DESIGN §7): three `serve` processes share one PostgreSQL store against the simulator.
Events go to all three; one is killed with SIGKILL under load and restarted. Then: every accepted
event reached Gainsight, the simulator never saw a call over budget while the budget was fully
used, each person's events arrived in order, and no company was created twice.

Each person's k-th event is sent only after every person's (k-1)-th got its 200, so the order the
store received them in is known: identify, group, track, track, identify, track, track.
"""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.e2e.servers import Server, get_json, sandbox_config, start_service, start_simulator, wait_for
from tests.e2e.servers import stop as stop_server

WRITE_KEY = "wk_replicas"
WINDOW_SECONDS = 2
LIMIT = 30  # calls per window, on both sides: the budget, not the replicas, sets the pace
SERVICE_ENV = {
    "GSD_LEASE_SECONDS": "3",
    "GSD_WORKERS": "4",
    "GSD_RATE_MINUTE_SECONDS": str(WINDOW_SECONDS),
    "GSD_RATE_LIMIT_PER_MINUTE": str(LIMIT),
}
SIM_FLAGS = ("--minute-seconds", str(WINDOW_SECONDS), "--rate-limit-per-minute", str(LIMIT))
PEOPLE = 30
COMPANIES = 8
STEPS = ("identify", "group", "track", "track", "identify", "track", "track")


def email(p: int) -> str:
    return f"replica-{p}@example.com"


def make_event(p: int, step: int) -> dict[str, Any]:
    kind = STEPS[step]
    base: dict[str, Any] = {
        "type": kind,
        "messageId": f"r-{p}-{step}-{uuid.uuid4().hex[:8]}",
        "userId": f"replica-user-{p}",
    }
    if kind == "identify":
        return {**base, "traits": {"email": email(p), "plan": f"plan-{step}"}}
    if kind == "group":
        return {
            **base,
            "traits": {"name": f"Replica Co {p % COMPANIES}", "region": "EU"},
            "context": {"traits": {"email": email(p)}},
        }
    return {
        **base,
        "event": "Feature Used",
        "properties": {"step": step},
        "context": {"traits": {"email": email(p)}},
    }


class Replicas:
    """Three services on one store; `post` tries each live replica in turn until one stores the batch."""

    def __init__(self, tmp_path: Path, sim: Server, store_url: str) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        self.env = {**SERVICE_ENV, "GSD_STORE_URL": store_url}
        self.destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
        self.contexts: list[Any] = []
        self.servers: list[Server | None] = []

    def start(self) -> Server:
        context = start_service(self.tmp_path, self.destinations, self.sim.base_url, **self.env)
        server: Server = context.__enter__()
        self.contexts.append(context)
        self.servers.append(server)
        return server

    def kill(self, index: int) -> None:
        server = self.servers[index]
        assert server is not None
        stop_server(server, signal.SIGKILL)
        self.servers[index] = None

    def post(self, first: int, batch: list[dict[str, Any]]) -> None:
        live = [s for s in self.servers if s is not None]
        for attempt in range(len(live) * 3):
            server = live[(first + attempt) % len(live)]
            try:
                answer = httpx.post(
                    server.base_url + "/v1/batch", json={"batch": batch}, auth=(WRITE_KEY, ""), timeout=10
                )
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                assert answer.json().get("rejected", []) == [], answer.text
                return
        raise AssertionError("no replica stored the batch")

    def close(self) -> None:
        for context in reversed(self.contexts):
            context.__exit__(None, None, None)


def final_states(store_url: str) -> dict[str, int]:
    """The store's events per state, read from the database itself."""
    with psycopg.connect(store_url) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM events GROUP BY state").fetchall())


def published(sim: Server) -> list[dict[str, Any]]:
    return list(get_json(sim, "/__sim/events"))


def test_three_replicas_on_one_postgresql_store(tmp_path: Path, postgres_url: str) -> None:
    with start_simulator(tmp_path, *SIM_FLAGS) as sim:
        replicas = Replicas(tmp_path, sim, postgres_url)
        try:
            for _ in range(3):
                replicas.start()
            sent: dict[str, tuple[int, int]] = {}  # messageId -> (person, step)
            for step in range(len(STEPS)):
                events = [make_event(p, step) for p in range(PEOPLE)]
                sent |= {e["messageId"]: (p, step) for p, e in enumerate(events)}
                for r in range(3):  # a third of the people to each replica
                    replicas.post(r, events[r::3])
                if step == 3:
                    # Under load: deliveries under way, a backlog waiting. Kill one, bring it back.
                    wait_for(lambda: len(published(sim)) >= 10, timeout=30)
                    replicas.kill(1)
                    replicas.start()
            tracks = {m for m, (_, step) in sent.items() if STEPS[step] == "track"}
            wait_for(lambda: tracks <= {e["jti"] for e in published(sim)}, timeout=60, interval=0.5)
            last_plan = f"plan-{max(i for i, k in enumerate(STEPS) if k == 'identify')}"
            wait_for(
                lambda: all(
                    p.get("Plan__gc") == last_plan and p["companies"]
                    for p in get_json(sim, "/__sim/people")
                    if p["Email"].startswith("replica-")
                ),
                timeout=30,
                interval=0.5,
            )
            received = published(sim)
            people = [p for p in get_json(sim, "/__sim/people") if p["Email"].startswith("replica-")]
            companies = [c["Name"] for c in get_json(sim, "/__sim/companies")]
            counters = get_json(sim, "/__sim/counters")
            calls = [r for r in get_json(sim, "/__sim/requests") if r["endpoint"]]
            wait_for(lambda: final_states(postgres_url).keys() <= {"delivered", "unchanged"}, timeout=30)
            states = final_states(postgres_url)
        finally:
            replicas.close()

    # Accepted = delivered, exactly: every event stored once and finished as delivered (or as
    # unchanged: a write Gainsight already held), none dead-lettered or rejected, none left over.
    assert sum(states.values()) == len(sent), states

    # Every accepted event delivered: each track once as an event, each person with its last state.
    arrivals = Counter(e["jti"] for e in received)
    assert tracks <= set(arrivals)
    assert len(people) == PEOPLE
    # Per-person order: each person's tracks arrived in the order they were sent.
    order: dict[int, list[int]] = {}
    for e in received:
        if e["jti"] in sent:
            person, step = sent[e["jti"]]
            order.setdefault(person, []).append(step)
    assert all(steps == sorted(steps) for steps in order.values()), order
    # No company created twice.
    ours = [name for name in companies if name.startswith("Replica Co")]
    assert sorted(ours) == sorted({f"Replica Co {i}" for i in range(COMPANIES)})
    # The budget held across the three replicas, and was used.
    throttled = [(round(r["time"] % WINDOW_SECONDS, 3), r["endpoint"]) for r in calls if r["status"] == 429]
    assert not throttled and counters["over_budget_accepted"] == 0, f"429s (time in window): {throttled}"
    per_window = Counter(int(r["time"] // WINDOW_SECONDS) for r in calls)
    full = [n for n in per_window.values() if n >= LIMIT * 0.9]
    print(
        f"\nsent {len(sent)} events ({len(tracks)} tracks), finished {states}, calls {len(calls)}, "
        f"tracks delivered twice {sum(1 for c in arrivals.values() if c > 1)}, "
        f"calls per window {sorted(per_window.values(), reverse=True)}"
    )
    assert max(per_window.values()) <= LIMIT
    assert len(full) >= 3, f"the budget was never fully used: {sorted(per_window.values())}"
