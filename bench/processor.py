"""The transformer routes over real HTTP, side by side with the reference (DESIGN §8): events/s
and CPU-seconds per 1,000 events for identify, track, group and mixed workloads at 1, 10 and 100
events per request.

Bars: at least the reference's events/s on every row, and ≥ 3x at 100 events per request.

Targets, measured in turn for every row (interleaved, `--passes` times, so the machine's noise
hits them alike):
- `ours`: this checkout's service (`python -m destination serve`, one process);
- `--before DIR`: another checkout of this project (e.g. `git archive OLD | tar -x -C DIR`),
  started the same way; repeat it to compare several (each is then named by its folder);
- `--reference URL --reference-pid PID`: a rudder-transformer you started yourself (this script
  does not build it); its CPU is read from PID and its child processes. Start it with
  `NODE_TLS_REJECT_UNAUTHORIZED=0` so that it accepts the simulator's self-signed certificate.

Gainsight is the simulator, one process, budget out of the way, served over HTTPS with a
certificate made here, because the reference calls `https://{domain}`: its items name the domain
`127.0.0.1:PORT`, while our services reach the same simulator through GSD_GAINSIGHT_BASE_URL and
trust the certificate through SSL_CERT_FILE. Only group events call it (the Company search and
insert or update) while transforming, so "group" measures an instant Gainsight. Mixed is 60%
track, 30% identify, 10% group. `--connections` keep-alive connections post back to back for
`--seconds` per row, after a warm-up of every workload. CPU is the target's own (user + system);
the simulator and the load generator share the machine's two cores with it.

Run: python bench/processor.py [--passes 2] [--seconds 5] [--route processor|router]
     [--before DIR [--before-python VENV/bin/python]]
     [--reference http://127.0.0.1:9090 --reference-pid PID]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import ingest  # noqa: E402  (bench/ingest.py: process starter, keep-alive connection)

WORKLOADS = ("identify", "track", "group", "mixed")
BATCHES = (1, 10, 100)
OUR_DOMAIN = "acme.gainsightcloud.com"
LOOPBACK = "127.0.0.1"
HUGE = {"GSD_RATE_LIMIT_PER_MINUTE": "100000000", "GSD_RATE_LIMIT_PER_DAY": "1000000000"}


def message(kind: str, n: int, companies: int) -> dict[str, Any]:
    if kind == "mixed":
        kind = ("track",) * 6 + ("identify",) * 3 + ("group",)
        kind = kind[n % 10]
    email = f"user{n % 5000}@example.com"
    base = {"messageId": f"m-{n}", "userId": f"u-{n % 5000}", "context": {"traits": {"email": email}}}
    if kind == "identify":
        traits = {"email": email, "firstName": "Ada", "lastName": f"L{n}", "seats": n % 40, "title": "Eng"}
        return {**base, "type": "identify", "traits": traits}
    if kind == "track":
        return {
            **base,
            "type": "track",
            "event": "Ticket Closed",
            "properties": {"ticketId": f"T-{n}", "n": n},
        }
    traits = {"name": f"Company {n % companies}", "employees": n % 900, "region": "EMEA"}
    return {**base, "type": "group", "groupId": f"g{n % companies}", "traits": traits}


# ---- processes ----


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its descendants (the reference forks a worker)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ingest.CLOCK_TICKS
        todo += children.get(current, [])
    return total


@dataclass
class Target:
    name: str
    url: str
    pid: int
    domain: str  # the Config.domain its items carry

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)


def self_signed(workdir: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = workdir / "sim.crt", workdir / "sim.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@contextmanager
def tls_simulator(workdir: Path, cert: Path, key: Path) -> Iterator[str]:
    port = ingest.free_port()
    code = (
        "import uvicorn\n"
        "from destination.simulator.app import create_simulator_app\n"
        "from destination.simulator.config import SimulatorConfig\n"
        "config = SimulatorConfig(rate_limit_per_minute=10**8, rate_limit_per_day=10**9)\n"
        f"uvicorn.run(create_simulator_app(config), host='127.0.0.1', port={port}, log_level='warning',"
        f" ssl_certfile={str(cert)!r}, ssl_keyfile={str(key)!r})\n"
    )
    url = f"https://127.0.0.1:{port}"
    probe = url + "/__sim/counters"
    with ingest.running([sys.executable, "-c", code], {}, probe, "simulator", workdir, verify=str(cert)):
        yield url


@contextmanager
def our_service(
    name: str, root: Path, workdir: Path, sim_url: str, cert: Path, python: str = sys.executable
) -> Iterator[Target]:
    home = workdir / name
    home.mkdir()
    (home / "d.json").write_bytes(
        orjson.dumps([{"id": "bench", "config": ingest.sandbox_config(OUR_DOMAIN)}])
    )
    env = {
        "GSD_DESTINATIONS": str(home / "d.json"),
        "GSD_STORE_URL": f"sqlite:///{home}/q.db",
        "GSD_GAINSIGHT_BASE_URL": sim_url,
        "GSD_LOG_LEVEL": "warning",
        "GSD_TRANSFORMER_ROUTES": "on",
        "GSD_TRANSFORMER_MAX_ITEMS": "1000",
        "SSL_CERT_FILE": str(cert),
        "PYTHONPATH": str(root),
        **HUGE,  # "instant Gainsight": the budget is not what this measures
    }
    with ingest.started(["serve"], env, "/health", home, python) as service:
        yield Target(name, service.base_url, service.process.pid, OUR_DOMAIN)


# ---- load ----


async def run_row(
    target: Target, kind: str, batch: int, route: str, seconds: float, connections: int, companies: int
) -> tuple[int, int, float]:
    """(events answered, error items, elapsed seconds) for one target and row."""
    host, port = target.url.removeprefix("http://").split(":")
    destination = {"ID": "d1", "Config": ingest.sandbox_config(target.domain)}
    counter = iter(range(10**9))
    done = errors = 0
    deadline = time.monotonic() + seconds

    def body() -> bytes:
        items = [
            {
                "message": message(kind, next(counter), companies),
                "destination": destination,
                "metadata": {"jobId": 1},
            }
            for _ in range(batch)
        ]
        return orjson.dumps(items if route == "processor" else {"destType": "gainsight", "input": items})

    # Bodies made beforehand and answers checked by counting, so that the generator, which shares
    # the machine's cores with the target, spends little CPU (the same for every target).
    bodies = [body() for _ in range(max(20, 2000 // batch))]

    async def client(offset: int) -> None:
        nonlocal done, errors
        conn = await ingest.Connection.open(host, int(port))
        path = "/v0/destinations/gainsight" if route == "processor" else "/routerTransform"
        sent = offset
        while time.monotonic() < deadline:
            status, answer = await conn.post(path, bodies[sent % len(bodies)])
            sent += 1
            if status != 200 or answer.count(b'"statusCode":') != batch:
                raise RuntimeError(f"{target.name}: {status} {answer[:300]!r}")
            done += batch
            errors += batch - answer.count(b'"statusCode":200')
        conn.close()

    start = time.monotonic()
    await asyncio.gather(*(client(n * 7) for n in range(connections)))
    return done, errors, time.monotonic() - start


@dataclass
class Row:
    rate: float
    cpu_per_1000: float
    errors: int


def measure(target: Target, kind: str, batch: int, args: argparse.Namespace) -> Row:
    before = target.cpu_seconds()
    done, errors, elapsed = asyncio.run(
        run_row(target, kind, batch, args.route, args.seconds, args.connections, args.companies)
    )
    spent = target.cpu_seconds() - before
    return Row(done / elapsed, 1000 * spent / max(done, 1), errors)


def report(results: dict[tuple[str, str, int], list[Row]], names: list[str], passes: int) -> None:
    print("\nsummary: events/s [CPU-s per 1,000 events], each pass; ratios ours/other of events/s")
    for kind in WORKLOADS:
        for batch in BATCHES:
            cells = []
            if ("ours", kind, batch) not in results:
                continue
            for name in names:
                rows = results.get((name, kind, batch), [])
                cells.append(f"{name} " + " ".join(f"{r.rate:,.0f} [{r.cpu_per_1000:.4f}]" for r in rows))
            ours = results.get(("ours", kind, batch), [])
            for other in (n for n in names if n != "ours"):
                theirs = results.get((other, kind, batch), [])
                ratios = [f"{a.rate / b.rate:.2f}x" for a, b in zip(ours, theirs, strict=False) if b.rate]
                cells.append(f"vs {other} " + "/".join(ratios))
            print(f"  {kind:<8} batch {batch:>3}: " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--route", choices=("processor", "router"), default="processor")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument(
        "--before",
        type=Path,
        action="append",
        default=[],
        help="another checkout of this project to compare (repeatable: each is named by its folder)",
    )
    parser.add_argument("--before-python", default=sys.executable, help="the Python (venv) to run it with")
    parser.add_argument("--reference", help="base URL of a running rudder-transformer")
    parser.add_argument("--reference-pid", type=int, help="its process id (CPU is read from it)")
    args = parser.parse_args()
    if args.reference and not args.reference_pid:
        parser.error("--reference needs --reference-pid")
    workloads = [w for w in args.workloads.split(",") if w]
    batches = [int(b) for b in args.batches.split(",") if b]

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        cert, key = self_signed(workdir)
        sim_url = stack.enter_context(tls_simulator(workdir, cert, key))
        targets = [stack.enter_context(our_service("ours", ROOT, workdir, sim_url, cert))]
        for checkout in args.before:
            name = "before" if len(args.before) == 1 else checkout.name
            before = our_service(name, checkout, workdir, sim_url, cert, args.before_python)
            targets.append(stack.enter_context(before))
        if args.reference:
            sim_host = sim_url.removeprefix("https://")
            targets.append(Target("reference", args.reference.rstrip("/"), args.reference_pid, sim_host))
        names = [t.name for t in targets]
        print(
            f"{args.route} route, {args.connections} connections, {args.seconds:g} s a row, "
            f"{args.passes} passes, targets: {', '.join(names)}"
        )
        for target in targets:  # warm-up: caches, connections, the companies created once
            for kind in workloads:
                measure(target, kind, 10, argparse.Namespace(**{**vars(args), "seconds": 1.0}))
        results: dict[tuple[str, str, int], list[Row]] = {}
        for number in range(1, args.passes + 1):
            for kind in workloads:
                for batch in batches:
                    order: Callable[[list[Target]], list[Target]] = list if number % 2 else _reversed
                    for target in order(targets):
                        row = measure(target, kind, batch, args)
                        results.setdefault((target.name, kind, batch), []).append(row)
                        print(
                            f"  pass {number} {target.name:<10} {kind:<8} batch {batch:>3}: "
                            f"{row.rate:>9,.0f} events/s, {row.cpu_per_1000:.4f} CPU-s/1,000 events, "
                            f"{row.errors} error items",
                            flush=True,
                        )
        report(results, names, args.passes)
        companies = httpx.get(sim_url + "/__sim/companies", verify=str(cert)).json()
        names_seen = [c["Name"] for c in companies]
        print(
            f"simulator: {len(names_seen)} companies for {args.companies} names, "
            f"{len(names_seen) - len(set(names_seen))} duplicate creates (all targets together)"
        )


def _reversed(targets: list[Target]) -> list[Target]:
    return targets[::-1]


if __name__ == "__main__":
    main()
