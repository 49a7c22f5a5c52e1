"""Start the real service and the simulator as separate processes, on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from destination.simulator import SANDBOX

SIM_ACCESS_KEY = SANDBOX.access_key
SIM_SHARED_SECRET = SANDBOX.shared_secret
SIM_TENANT = SANDBOX.tenant_id
SIM_TOPIC = SANDBOX.topic
DOMAIN = "acme.gainsightcloud.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox_config(**overrides: Any) -> dict[str, Any]:
    """A dashboard Config that the simulator's default (sandbox) tenant accepts."""
    return {
        "domain": DOMAIN,
        "accessKey": SIM_ACCESS_KEY,
        "sharedSecret": SIM_SHARED_SECRET,
        "tenantId": SIM_TENANT,
        "topicName": SIM_TOPIC,
        "eventNameMap": [
            {"from": "Ticket Closed", "to": "ticket_closed"},
            {"from": "Feature Used", "to": "feature_used"},
        ],
        "eventVersionMap": [{"from": "Ticket Closed", "to": "1.0"}, {"from": "Feature Used", "to": "1.0"}],
        "personMap": [{"from": "seats", "to": "Seats__gc"}, {"from": "plan", "to": "Plan__gc"}],
        "companyMap": [{"from": "region", "to": "Region__gc"}],
        **overrides,
    }


class Server:
    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, **kwargs)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.output()}")
        try:
            if httpx.get(server.base_url + path, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.output()}")


@contextmanager
def running(
    args: Sequence[str],
    *,
    ready_path: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> Iterator[Server]:
    """Run `python -m destination ARGS --port P` until the block ends, then SIGTERM it."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    # The checkout under test, whatever else is installed.
    root = str(Path(__file__).resolve().parents[2])
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": root, **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "destination", *args, "--port", str(port)],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(server, ready_path, timeout)
        yield server
    finally:
        stop(server)


def stop(server: Server, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    if server.process.poll() is None:
        server.process.send_signal(sig)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def start_simulator(workdir: Path, *flags: str) -> Any:
    return running(
        ["simulator", "--log-level", "warning", *flags], ready_path="/__sim/counters", workdir=workdir
    )


def write_destinations(path: Path, destinations: list[dict[str, Any]]) -> Path:
    path.write_bytes(orjson.dumps({"destinations": destinations}))
    return path


def start_service(
    workdir: Path, destinations: list[dict[str, Any]] | None, sim_url: str | None, **env: str
) -> Any:
    """The real `serve` process; GSD_* settings given as keyword arguments (e.g. GSD_WORKERS="8")."""
    full_env = {"GSD_STORE_URL": f"sqlite:///{workdir}/gsd.sqlite3", **env}
    if sim_url is not None:
        full_env["GSD_GAINSIGHT_BASE_URL"] = sim_url
    if destinations is not None:
        full_env["GSD_DESTINATIONS"] = str(write_destinations(workdir / "destinations.json", destinations))
    return running(["serve"], ready_path="/health", workdir=workdir, env=full_env)


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its value, or fail with the last value seen."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


def get_json(server: Server, path: str, **kwargs: Any) -> Any:
    """GET a JSON document from a running server (e.g. the simulator's `/__sim/people`)."""
    response = httpx.get(server.base_url + path, timeout=10.0, **kwargs)
    response.raise_for_status()
    return response.json()


def metrics(server: Server, name: str) -> list[tuple[dict[str, str], float]]:
    """The service's `/metrics` samples called `name`: (labels, value) each, from one scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(server.base_url + "/metrics", timeout=10.0).text
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(
        value for found, value in metrics(server, name) if all(found.get(k) == v for k, v in labels.items())
    )


def queue_idle(server: Server) -> bool:
    """True when the service holds no event waiting for (or in) delivery (one scrape)."""
    depth = metrics(server, "gsd_queue_events")
    return sum(value for labels, value in depth if labels.get("state") in ("queued", "leased")) == 0
