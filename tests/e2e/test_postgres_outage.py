"""PostgreSQL briefly unreachable under load (DESIGN §5, §7): ingest answers 503 while it is gone,
never a 200 for an event it could not store; once the server is back the service resumes by itself
and every event acknowledged with a 200 reaches Gainsight."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import httpx

from tests import pg
from tests.e2e.servers import sandbox_config, start_service, start_simulator, wait_for
from tests.e2e.test_crash import WRITE_KEY, Sender, jtis

SERVICE_ENV = {
    "GSD_LEASE_SECONDS": "3",
    "GSD_WORKERS": "8",
    "GSD_RATE_MINUTE_SECONDS": "2",
    "GSD_RATE_LIMIT_PER_MINUTE": "1000",
    "GSD_STORE_POOL_SIZE": "4",
}
DOWN_SECONDS = 8.0  # longer than the store's wait for a connection (postgres_connections.WAIT_SECONDS)
SIM_FLAGS = ("--minute-seconds", "2", "--rate-limit-per-minute", "1000")


class CountingSender(Sender):
    """A Sender that also counts the answers it got while the store was away."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.statuses: list[tuple[float, int]] = []  # (sent at, status)

    def run(self) -> None:
        with httpx.Client(base_url=self.service.base_url, auth=(WRITE_KEY, ""), timeout=15.0) as client:
            while not self.stopping.wait(0.05):
                events = self.batch()
                ids = {e["messageId"] for e in events}
                self.sent |= ids
                sent_at = time.monotonic()
                try:
                    response = client.post("/v1/batch", json={"batch": events})
                except httpx.TransportError:
                    continue
                self.statuses.append((sent_at, response.status_code))
                if response.status_code == 200:
                    self.accepted |= ids


def test_postgresql_going_away_under_load_loses_no_acknowledged_event(
    tmp_path: Path, postgres_cluster: pg.Cluster
) -> None:
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
    env = {**SERVICE_ENV, "GSD_STORE_URL": postgres_cluster.url}
    with (
        start_simulator(tmp_path, *SIM_FLAGS) as sim,
        start_service(tmp_path, destinations, sim.base_url, **env) as service,
    ):
        sender = CountingSender(service, itertools.count())
        sender.start()
        wait_for(lambda: len(sender.accepted) >= 100 and len(jtis(sim)) > 20)

        postgres_cluster.stop("immediate")  # as a crash or a failover would
        went_down = time.monotonic()
        ready_while_down = httpx.get(service.base_url + "/ready", timeout=15).status_code
        time.sleep(max(0.0, went_down + DOWN_SECONDS - time.monotonic()))
        postgres_cluster.start()
        came_back = time.monotonic()

        accepted_at_restart = len(sender.accepted)
        wait_for(lambda: len(sender.accepted) >= accepted_at_restart + 100, timeout=30)
        sender.stop()
        try:
            wait_for(lambda: sender.accepted <= set(jtis(sim)), timeout=90, interval=0.5)
        except AssertionError:
            missing = sender.accepted - set(jtis(sim))
            raise AssertionError(
                f"{len(missing)} of {len(sender.accepted)} acknowledged events not delivered; "
                f"service log:\n{service.output()[-4000:]}"
            ) from None
        wait_for(lambda: httpx.get(service.base_url + "/ready", timeout=5).status_code == 200)
        received = jtis(sim)

    down = [status for at, status in sender.statuses if went_down <= at < came_back]
    print(
        f"\naccepted {len(sender.accepted)}, delivered {len(sender.accepted & set(received))}, "
        f"answers while PostgreSQL was down: {sorted(set(down))} ({len(down)})"
    )
    # Sent while the server was away: 503 once the pool gives up waiting (a request that was still
    # waiting when the server came back may be stored and get its 200).
    assert 503 in down and set(down) <= {200, 503}, f"while the store was away: {sorted(set(down))}"
    assert ready_while_down == 503
    assert sender.accepted <= set(received), "an event acknowledged with a 200 was lost"
    assert set(received) <= sender.sent, "Gainsight got events nobody sent"
