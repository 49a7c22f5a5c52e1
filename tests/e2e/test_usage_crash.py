"""Usage counts survive kill -9 (DESIGN §3.7, §5): the service counts events in its store and is
killed while counting, before any flush; restarted on the same store, it flushes every count
exactly once (no count lost, none doubled), whatever was in flight, and senders' retries of the
same messageIds add nothing. The real service and simulator processes, over HTTP."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from destination.sandbox import SANDBOX_USAGE
from tests.e2e.servers import (
    Server,
    get_json,
    metric,
    queue_idle,
    sandbox_config,
    start_service,
    start_simulator,
    wait_for,
)
from tests.e2e.servers import stop as stop_server

WRITE_KEY = "wk_usage"
USAGE = SANDBOX_USAGE
PEOPLE = {"u0": "Acme Ltd", "u1": "Globex"}
METRICS = ("Report Exported", "Dashboard Viewed")
DAY = "2026-12-06"
# No flush before the kill (an hour); after the restart, every second.
BEFORE = {"GSD_USAGE_FLUSH_SECONDS": "3600", "GSD_WORKERS": "4"}
AFTER = {"GSD_USAGE_FLUSH_SECONDS": "1"}


def counted(n: int) -> dict[str, Any]:
    user = f"u{n % 2}"
    return {
        "type": "track",
        "messageId": f"usage-{n}",
        "userId": user,
        "event": METRICS[(n // 2) % 2],
        "timestamp": f"{DAY}T12:00:00Z",
    }


def expected(numbers: set[int]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for n in numbers:
        event = counted(n)
        key = (PEOPLE[event["userId"]], event["event"])
        found[key] = found.get(key, 0) + 1
    return found


def usage_rows(sim: Server) -> dict[tuple[str, str], int]:
    names = {c["Gsid"]: c["Name"] for c in get_json(sim, "/__sim/companies")}
    rows = get_json(sim, "/__sim/objects/ProductUsage__gc")
    assert all(r["UsageDate__gc"] == DAY for r in rows)
    keys = [(names[r["Company__gc"]], r["Metric__gc"]) for r in rows]
    assert len(keys) == len(set(keys)), f"a row was written twice: {rows}"
    return {key: r["Count__gc"] for key, r in zip(keys, rows, strict=True)}


class Sender(threading.Thread):
    """Posts counted events, ten a request, remembering which got a 200."""

    def __init__(self, service: Server, first: int) -> None:
        super().__init__(daemon=True)
        self.service, self.next = service, first
        self.accepted: set[int] = set()
        self.sent: set[int] = set()  # answered or not
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.service.base_url, auth=(WRITE_KEY, ""), timeout=5.0) as client:
            while not self.stopping.is_set():
                numbers = list(range(self.next, self.next + 10))
                self.next += 10
                self.sent.update(numbers)
                try:
                    answer = client.post("/v1/batch", json={"batch": [counted(n) for n in numbers]})
                except httpx.HTTPError:
                    return  # killed
                if answer.status_code == 200:
                    self.accepted.update(numbers)
                self.stopping.wait(0.02)


def test_kill_9_between_counting_and_flushing_loses_and_doubles_no_count(tmp_path: Path) -> None:
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config(usage=USAGE)}]
    with start_simulator(tmp_path) as sim:
        with start_service(tmp_path, destinations, sim.base_url, **BEFORE) as service:
            with httpx.Client(base_url=service.base_url, auth=(WRITE_KEY, ""), timeout=10.0) as client:
                for user, name in PEOPLE.items():  # each person's company, by a group event
                    group = {
                        "userId": user,
                        "traits": {"name": name},
                        "context": {"traits": {"email": f"{user}@x.io"}},
                    }
                    assert client.post("/v1/group", json=group).status_code == 200
            sender = Sender(service, 0)
            sender.start()
            wait_for(lambda: metric(service, "gsd_queue_events", state="counted") >= 200, timeout=60)
            stop_server(service, signal.SIGKILL)  # while events are being counted
            sender.stopping.set()
            sender.join(10)
        assert get_json(sim, "/__sim/objects/ProductUsage__gc") == []  # nothing flushed before the kill
        accepted, sent = sender.accepted, sender.sent
        with start_service(tmp_path, destinations, sim.base_url, **AFTER) as service:
            # The sender sends again what got no answer, and some of what did: duplicates all.
            with httpx.Client(base_url=service.base_url, auth=(WRITE_KEY, ""), timeout=10.0) as client:
                again = sorted(sent - accepted) + sorted(accepted)[:50]
                for start in range(0, len(again), 100):
                    batch = {"batch": [counted(n) for n in again[start : start + 100]]}
                    assert client.post("/v1/batch", json=batch).status_code == 200
            wait_for(lambda: queue_idle(service), timeout=60, interval=0.5)
            counted_events = metric(service, "gsd_queue_events", state="counted")
            rows = wait_for(lambda: (r := usage_rows(sim)) == expected(sent) and r, timeout=30, interval=0.5)
    print(f"\n{len(accepted)} events accepted before the kill, {len(sent)} sent; rows: {rows}")
    assert len(accepted) >= 200
    assert counted_events == len(sent) == sum(rows.values())
