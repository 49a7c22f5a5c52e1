"""Crash safety (DESIGN §5, §8): kill -9 the service during load, restart it on the same store,
and every event that got a 200 reaches Gainsight or the dead letters; none is lost.

Track events carry their messageId as the signature's `jti`, which the simulator records per
event, so the messageIds that got a 200 can be compared with those Gainsight received.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

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

WRITE_KEY = "wk_crash"
ADMIN_TOKEN = "crash-admin-token"
# The default lease (10 s, renewed while a delivery runs): a restarted service takes over the
# killed one's claims when it expires. Short, generous rate windows: the budget never holds
# delivery up for long.
SERVICE_ENV = {
    "GSD_WORKERS": "8",
    "GSD_RATE_MINUTE_SECONDS": "2",
    "GSD_RATE_LIMIT_PER_MINUTE": "1000",
    "GSD_ADMIN_TOKEN": ADMIN_TOKEN,
}
SIM_FLAGS = ("--minute-seconds", "2", "--rate-limit-per-minute", "1000")
BATCH = 10
PACE = 0.04  # up to ~250 events/s offered: more than the service delivers, so a backlog builds
KILLS = 2
ROUND = 300  # events accepted per round: a backlog of a few hundred when the kill lands


class Sender(threading.Thread):
    """Posts batches of track events until stopped or ROUND are accepted; remembers which
    messageIds got a 200."""

    def __init__(self, service: Server, serial: itertools.count[int]) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.serial = serial
        self.accepted: set[str] = set()
        self.sent: set[str] = set()  # every messageId put on the wire, answered or not
        self.stopping = threading.Event()

    def batch(self) -> list[dict[str, Any]]:
        events = []
        for _ in range(BATCH):
            n = next(self.serial)
            events.append(
                {
                    "type": "track",
                    "messageId": f"crash-{n}-{uuid.uuid4().hex[:8]}",
                    "userId": f"p{n % 50}",
                    "event": "Feature Used",
                    "properties": {"n": n},
                    "context": {"traits": {"email": f"p{n % 50}@example.com"}},
                }
            )
        return events

    def run(self) -> None:
        with httpx.Client(base_url=self.service.base_url, auth=(WRITE_KEY, ""), timeout=5.0) as client:
            # Paced (a batch per PACE seconds) so ingest and delivery share the two cores.
            while len(self.accepted) < ROUND and not self.stopping.wait(PACE):
                events = self.batch()
                ids = {e["messageId"] for e in events}
                self.sent |= ids
                try:
                    response = client.post("/v1/batch", json={"batch": events})
                except httpx.TransportError:
                    continue  # the service is gone: these are not accepted (they may be stored)
                if response.status_code == 200:
                    self.accepted |= ids

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def jtis(sim: Server) -> Counter[str]:
    return Counter(e["jti"] for e in get_json(sim, "/__sim/events"))


def published(sim: Server) -> int:
    """Events the simulator took (cheaper to poll than the events themselves)."""
    counts = get_json(sim, "/__sim/counters")["endpoints"].get("events.publish", {})
    return int(counts.get("by_status", {}).get("200", 0))


def dead_ids(service: Server) -> set[str]:
    letters = get_json(
        service, "/admin/dead-letters?limit=1000", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    return {d["messageId"] for d in letters["deadLetters"]}


def test_kill_9_during_load_loses_no_accepted_event(tmp_path: Path) -> None:
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
    serial = itertools.count()
    accepted: set[str] = set()
    sent: set[str] = set()
    backlog_at_kill: list[int] = []
    with start_simulator(tmp_path, *SIM_FLAGS) as sim:
        # Each call takes a while, so deliveries are in flight (leased) when the kill lands, and
        # the workers (8 calls in flight: about 50 a second) stay behind the sender even when a
        # busy machine slows the sender down: a backlog waits at every kill.
        httpx.post(sim.base_url + "/__sim/faults", json={"latency_seconds": 0.15}).raise_for_status()
        for _ in range(KILLS):
            with start_service(tmp_path, destinations, sim.base_url, **SERVICE_ENV) as service:
                sender = Sender(service, serial)
                sender.start()
                before = published(sim)
                # Load until deliveries of this round's events are under way and a backlog waits.
                # (After a kill, the dead process's claims first wait out their 10 s lease.)
                wait_for(
                    lambda s=sender, b=before: len(s.accepted) >= ROUND and published(sim) > b + 50,
                    timeout=45,
                )
                stop_server(service, signal.SIGKILL)
                sender.stop()
                accepted |= sender.accepted
                sent |= sender.sent
                backlog_at_kill.append(len(accepted - set(jtis(sim))))

        # Against an instant Gainsight, every accepted event is delivered within 20 s of the
        # restart (DESIGN §5: the dead process's leases are short, and expire on their own).
        httpx.post(sim.base_url + "/__sim/faults", json={"latency_seconds": 0}).raise_for_status()
        restarted = time.monotonic()
        with start_service(tmp_path, destinations, sim.base_url, **SERVICE_ENV) as service:
            wait_for(lambda: accepted <= set(jtis(sim)) | dead_ids(service), timeout=20, interval=0.5)
            recovered_in = time.monotonic() - restarted
            wait_for(lambda: queue_idle(service), timeout=30)
            received = jtis(sim)
            dead = dead_ids(service)
            redelivered = sum(
                1 for r in get_json(sim, "/__sim/requests") if r["status"] == 401
            )  # a retry of an event that had arrived: its jti is refused as a replay

    lost = accepted - set(received) - dead
    print(
        f"\naccepted {len(accepted)}, delivered {len(accepted & set(received))}, "
        f"dead-lettered {len(accepted & dead)}, backlog at each kill {backlog_at_kill}, "
        f"delivered twice {sum(1 for c in received.values() if c > 1)}, "
        f"redelivery attempts refused as replays {redelivered}, all delivered {recovered_in:.1f} s "
        "after the restart"
    )
    assert all(backlog > 0 for backlog in backlog_at_kill), "the kill found nothing in the queue"
    assert not lost, f"{len(lost)} accepted events lost, e.g. {sorted(lost)[:5]}"
    assert set(received) | dead <= sent, "Gainsight got events nobody sent"
    assert not dead, f"valid events were dead-lettered: {sorted(dead)[:5]}"
