"""Durable ingest against the real `serve` process (DESIGN §8): batch throughput and the latency of
single-event ingest under an open-loop load.

Bars: `/v1/batch` of 100 events ≥ 10,000 events/s on 2 cores with SQLite, and single-event ingest at
500 requests/s with p99 ≤ 25 ms.

Set-up: each phase starts a fresh service (`python -m destination serve`) on an empty store: by
default SQLite in a temporary directory; with `--store postgresql://…`, a fresh schema in that
database (dropped afterwards; DESIGN §8's bar there: ≥ 5,000 events/s with the server on the same
machine, whose CPU is then counted too). One destination, inbound auth off (GSD_AUTH=off), and
GSD_GAINSIGHT_BASE_URL pointed at an unused loopback port. The workers run as in production: they
claim events, spend the default budget (100 calls/minute) on calls that are refused at once, and
park everything else until the next rate window, so delivery costs the store some writes but no
Gainsight time.

1. Batch: `--connections` concurrent keep-alive HTTP/1.1 connections (asyncio streams) each post batches of
   `--batch` track events back to back for `--seconds`, after a 1 s warm-up; events/s counts the
   events the service answered 200 for.
2. Open loop: single `/v1/track` events on a fixed timetable (`--rate` per second for `--seconds`);
   each request is started at its scheduled time whether or not earlier ones have finished, and its
   latency is measured from the scheduled time (so a stalled server or generator counts against it).

The load generator runs on the same 2 cores as the service and takes a good part of one of them;
its CPU use is printed beside the service's, and CPU-seconds per 1,000 events stored.
`--backlog N` queues N track events before the open-loop phase starts (its p99 bar holds with a
backlog queued, not only on an empty queue); `--code DIR` runs another checkout's service (before
and after a change).
Run: python bench/ingest.py [--seconds 10] [--store postgresql://user@127.0.0.1/db] [--phase batch]
    [--backlog 100000] [--code /work/main]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
CODE = ROOT  # the checkout whose `destination` the services run (--code)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DESTINATIONS = {
    "destinations": [
        {
            "id": "bench",
            "config": {
                "domain": "bench.gainsightcloud.com",
                "accessKey": "bench-access-key",
                "sharedSecret": "bench-shared-secret",
                "tenantId": "bench-tenant",
                "topicName": "Product",
                "eventNameMap": [{"from": "Feature Used", "to": "feature_used"}],
                "eventVersionMap": [{"from": "Feature Used", "to": "1.0"}],
            },
        }
    ]
}


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    base_url: str

    def cpu_seconds(self) -> float:
        """User + system CPU time of the service process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def sandbox_config(domain: str) -> dict[str, Any]:
    """A dashboard Config the simulator's sandbox tenant accepts (benches that call the simulator)."""
    return {
        "domain": domain,
        "accessKey": "sandbox-access-key",
        "sharedSecret": "sandbox-shared-secret",
        "tenantId": "sandbox-tenant",
        "topicName": "Sandbox",
        "eventNameMap": [{"from": "Ticket Closed", "to": "ticket_closed"}],
        "eventVersionMap": [{"from": "Ticket Closed", "to": "1.0"}],
        "personMap": [{"from": "seats", "to": "Seats__gc"}],
        "companyMap": [{"from": "region", "to": "Region__gc"}],
    }


@contextmanager
def running(
    command: list[str],
    env: dict[str, str],
    probe_url: str,
    name: str,
    workdir: Path,
    verify: bool | str = True,
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` run from `workdir` (this checkout importable, `env` added), once `probe_url`
    answers 200; stopped with SIGTERM (then killed) when the block ends. Output: `workdir/NAME.log`."""
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(CODE), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {(workdir / f'{name}.log').read_text()}")
            try:
                if httpx.get(probe_url, verify=verify, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within 30 s")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def started(
    args: list[str], env: dict[str, str], ready_path: str, workdir: Path, python: str = sys.executable
) -> Iterator[Service]:
    """`python -m destination ARGS --host 127.0.0.1 --port P` with GSD_* `env`, until the block ends."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [python, "-m", "destination", *args, "--host", "127.0.0.1", "--port", str(port)]
    with running(command, env, base_url + ready_path, args[0], workdir) as process:
        yield Service(process, base_url)


@contextmanager
def store_url(store: str | None, workdir: Path) -> Iterator[str]:
    """An empty store: a SQLite file in `workdir`, or a fresh schema in the PostgreSQL database."""
    if store is None:
        yield f"sqlite:///{workdir}/gsd.sqlite3"
        return
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in store else "?"
        yield f"{store}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(store, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def postgres_cpu_seconds() -> float:
    """User + system CPU of every local `postgres` process (the server, when it runs here)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text.split("(", 1)[1].rsplit(")", 1)
        if name.startswith("postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@contextmanager
def service(workdir: Path, url: str) -> Iterator[Service]:
    (workdir / "destinations.json").write_bytes(orjson.dumps(DESTINATIONS))
    env = {
        "GSD_DESTINATIONS": str(workdir / "destinations.json"),
        "GSD_STORE_URL": url,
        "GSD_AUTH": "off",
        "GSD_GAINSIGHT_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "GSD_LOG_LEVEL": "warning",
    }
    with started(["serve"], env, "/health", workdir) as svc:
        yield svc


class Connection:
    """One keep-alive HTTP/1.1 connection: far less CPU per request than a general client, so the
    generator disturbs the measurement less."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Idle connections are reused oldest-idle first; a request finding none idle opens a new one
    (open loop). A reused connection the server closed meanwhile (keep-alive timeout) is replaced
    and the request sent again on a fresh one."""

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.idle: deque[Connection] = deque()
        self.opened = 0

    async def _new(self) -> Connection:
        self.opened += 1
        return await Connection.open(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        conn = self.idle.popleft() if self.idle else await self._new()
        try:
            answer = await conn.post(path, body)
        except (OSError, asyncio.IncompleteReadError) as exc:
            conn.close()
            stale = isinstance(exc, asyncio.IncompleteReadError) and not exc.partial
            if not stale:
                raise
            conn = await self._new()
            answer = await conn.post(path, body)
        self.idle.append(conn)
        return answer

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


def track(n: int, people: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Feature Used",
        "messageId": f"{uuid.uuid4().hex}",
        "userId": f"user-{n % people}",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "context": {
            "library": {"name": "analytics-node", "version": "6.0"},
            "traits": {"email": f"user{n % people}@example.com"},
        },
        "properties": {"feature": "export", "plan": "gold", "seats": n % 50, "ticket": f"T-{n}"},
    }


def worker_activity(svc: Service) -> str:
    """What the delivery workers did meanwhile, from the service's /metrics."""
    totals = {"gsd_budget_deferrals_total": 0.0, "gsd_gainsight_calls_total": 0.0}
    for line in httpx.get(svc.base_url + "/metrics", timeout=10).text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return (
        f"  workers meanwhile: {totals['gsd_gainsight_calls_total']:,.0f} Gainsight calls (refused), "
        f"{totals['gsd_budget_deferrals_total']:,.0f} events claimed and put back for the budget"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def generator_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- 1. batch throughput


async def batch_phase(
    svc: Service, seconds: float, connections: int, size: int, people: int, postgres: bool
) -> None:
    counter = iter(range(10**12))
    stored = 0
    requests = 0
    failures = 0
    latencies: list[float] = []
    measuring = False
    stop_at = 0.0

    async def client_loop(pool: Pool) -> None:
        nonlocal stored, requests, failures
        while time.perf_counter() < stop_at:
            body = orjson.dumps({"batch": [track(next(counter), people) for _ in range(size)]})
            started = time.perf_counter()
            status, answer = await pool.post("/v1/batch", body)
            if not measuring:
                continue
            if status != 200:
                failures += 1
                continue
            latencies.append(time.perf_counter() - started)
            requests += 1
            stored += orjson.loads(answer)["stored"]

    pool = Pool(svc.base_url)
    stop_at = time.perf_counter() + 1.0 + seconds
    loops = [asyncio.create_task(client_loop(pool)) for _ in range(connections)]
    await asyncio.sleep(1.0)  # warm-up: connections open, SQLite pages cached
    measuring = True
    cpu0, svc_cpu0, t0 = generator_cpu(), svc.cpu_seconds(), time.perf_counter()
    pg_cpu0 = postgres_cpu_seconds() if postgres else 0.0
    await asyncio.gather(*loops)
    elapsed = time.perf_counter() - t0
    cpu, svc_cpu = generator_cpu() - cpu0, svc.cpu_seconds() - svc_cpu0
    pg_cpu = postgres_cpu_seconds() - pg_cpu0 if postgres else 0.0
    pool.close()

    bar = "5,000 (PostgreSQL)" if postgres else "10,000 (SQLite)"
    print(f"/v1/batch, {size} events per request, {connections} connections, {elapsed:.1f} s")
    print(f"  {stored / elapsed:,.0f} events/s stored   (bar: >= {bar})")
    print(f"  {requests / elapsed:,.1f} requests/s, {failures} non-200")
    if latencies:
        print(
            f"  request latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
        )
    print(
        f"  CPU: service {svc_cpu / elapsed:.0%} of a core, load generator {cpu / elapsed:.0%} "
        "of a core (same 2-core machine)"
        + (f", PostgreSQL server {pg_cpu / elapsed:.0%} of a core" if postgres else "")
    )
    if stored:
        print(
            f"  CPU-seconds per 1,000 events: service {svc_cpu / stored * 1000:.3f}"
            + (f", PostgreSQL {pg_cpu / stored * 1000:.3f}" if postgres else "")
            + f", load generator {cpu / stored * 1000:.3f}"
        )
    print(worker_activity(svc))


def queue_backlog(url: str, events: int, people: int) -> None:
    """`events` track events stored before the service starts, as ingest stores them: its workers
    then claim them against the budget while the phase runs."""
    if events <= 0:
        return
    sys.path.insert(0, str(CODE))
    from destination.delivery.store import NewEvent
    from destination.delivery.stores import open_store
    from destination.events import ordering_key

    async def store_them() -> None:
        store = open_store(url)
        try:
            for start in range(0, events, 1000):
                batch = [track(n, people) for n in range(start, min(events, start + 1000))]
                now = time.time()
                await store.enqueue(
                    [
                        NewEvent("bench", e["messageId"], ordering_key(e), "track", orjson.dumps(e), now)
                        for e in batch
                    ]
                )
        finally:
            await store.close()

    asyncio.run(store_them())
    print(f"  {events:,} events queued before the service started")


# ---------------------------------------------------------------- 2. open-loop latency


async def open_loop_phase(svc: Service, seconds: float, rate: float, people: int) -> None:
    total = int(seconds * rate)
    latencies: list[float] = []
    late_starts: list[float] = []
    failures = 0
    last_done = 0.0
    bodies = [orjson.dumps(track(n, people)) for n in range(total)]  # made before the clock starts

    async def one(pool: Pool, body: bytes, due: float) -> None:
        nonlocal failures, last_done
        late_starts.append(time.perf_counter() - due)
        try:
            status, _ = await pool.post("/v1/track", body)
            ok = status == 200
        except (OSError, asyncio.IncompleteReadError):
            ok = False
        done = time.perf_counter()
        last_done = max(last_done, done)
        if ok:
            latencies.append(done - due)
        else:
            failures += 1

    pool = Pool(svc.base_url)
    for n in range(20):  # warm-up, not measured
        await pool.post("/v1/track", orjson.dumps(track(-n - 1, people)))
    cpu0, svc_cpu0 = generator_cpu(), svc.cpu_seconds()
    t0 = time.perf_counter() + 0.05
    tasks = []
    for i, body in enumerate(bodies):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(pool, body, due)))
    await asyncio.gather(*tasks)
    elapsed = last_done - t0
    cpu, svc_cpu = generator_cpu() - cpu0, svc.cpu_seconds() - svc_cpu0
    pool.close()

    print(f"/v1/track single events, open loop at {rate:g} requests/s for {seconds:g} s ({total} requests)")
    print(f"  {pool.opened} connections opened")
    print(f"  achieved {len(latencies) / elapsed:,.1f} requests/s answered 200, {failures} failed")
    if latencies:
        print(
            "  latency from scheduled time: "
            f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p90 {percentile(latencies, 0.9) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms   (bar: p99 <= 25 ms), "
            f"max {max(latencies) * 1000:.1f} ms"
        )
    print(
        f"  generator start slip: p99 {percentile(late_starts, 0.99) * 1000:.1f} ms, "
        f"max {max(late_starts) * 1000:.1f} ms (time the generator itself was late)"
    )
    print(
        f"  CPU: service {svc_cpu / elapsed:.0%} of a core, load generator {cpu / elapsed:.0%} "
        "of a core (same 2-core machine); service "
        f"{svc_cpu / max(len(latencies), 1) * 1000:.3f} CPU-s per 1,000 events stored"
    )
    print(worker_activity(svc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--connections", type=int, default=12, help="batch phase: concurrent connections")
    parser.add_argument("--batch", type=int, default=100, help="batch phase: events per request")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop phase: requests per second")
    parser.add_argument("--people", type=int, default=10_000, help="distinct people in the events")
    parser.add_argument(
        "--store", help="a PostgreSQL database URL to measure instead of SQLite (a schema is made per phase)"
    )
    parser.add_argument("--phase", choices=["batch", "open-loop", "both"], default="both")
    parser.add_argument(
        "--backlog", type=int, default=0, help="open-loop phase: track events queued before it starts"
    )
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose `destination` runs")
    args = parser.parse_args()
    global CODE
    CODE = args.code.resolve()
    postgres = args.store is not None
    print(f"{os.cpu_count()} CPUs; service and load generator share them; store: ", end="")
    print("PostgreSQL" if postgres else "SQLite")
    with tempfile.TemporaryDirectory(prefix="gsd-bench-") as tmp:
        if args.phase in ("batch", "both"):
            workdir = Path(tmp, "batch")
            workdir.mkdir()
            with store_url(args.store, workdir) as url, service(workdir, url) as svc:
                asyncio.run(
                    batch_phase(svc, args.seconds, args.connections, args.batch, args.people, postgres)
                )
        if args.phase in ("open-loop", "both"):
            workdir = Path(tmp, "open-loop")
            workdir.mkdir()
            with store_url(args.store, workdir) as url:
                queue_backlog(url, args.backlog, args.people)
                with service(workdir, url) as svc:
                    asyncio.run(open_loop_phase(svc, args.seconds, args.rate, args.people))


if __name__ == "__main__":
    main()
