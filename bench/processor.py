"""The RudderStack processor endpoint over real HTTP (DESIGN §8): events/s with 100 events per
request, for identify, track and group, and duplicate Company creates for group.

Bars: identify and track ≥ 3x the reference transformer on this machine (it did ~9,300 identify/s
and ~13,600 track/s in one process); group ≥ 10x the reference (~780/s) with 0 duplicate creates.

Set-up: the simulator runs as Gainsight (budget raised out of the way, on both sides) and the service points
GSD_GAINSIGHT_BASE_URL at it; only group events call it (Company search/insert/update) while
transforming. `--connections` keep-alive connections post batches back to back for `--seconds`
per phase. Service, simulator and load generator share the machine's cores; the script prints the
CPU each used. Run: python bench/processor.py [--seconds 8] [--connections 8] [--companies 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import ingest  # noqa: E402  (bench/ingest.py: its keep-alive connection and helpers)

CONFIG = {
    "domain": "acme.gainsightcloud.com",
    "accessKey": "sandbox-access-key",
    "sharedSecret": "sandbox-shared-secret",
    "tenantId": "sandbox-tenant",
    "topicName": "Sandbox",
    "eventNameMap": [{"from": "Ticket Closed", "to": "ticket_closed"}],
    "eventVersionMap": [{"from": "Ticket Closed", "to": "1.0"}],
    "personMap": [{"from": "seats", "to": "Seats__gc"}],
    "companyMap": [{"from": "region", "to": "Region__gc"}],
}


def message(kind: str, n: int, companies: int) -> dict[str, Any]:
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
    return {
        **base,
        "type": "group",
        "groupId": f"g{n % companies}",
        "traits": {"name": f"Company {n % companies}", "employees": n % 900, "region": "EMEA"},
    }


async def phase(kind: str, url: str, seconds: float, connections: int, companies: int) -> tuple[float, int]:
    host, port = url.removeprefix("http://").split(":")
    counter = iter(range(10**9))
    done = 0
    errors = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, errors
        conn = await ingest.Connection.open(host, int(port))
        while time.monotonic() < deadline:
            items = [
                {
                    "message": message(kind, next(counter), companies),
                    "destination": {"ID": "d1", "Config": CONFIG},
                    "metadata": {"jobId": 1},
                }
                for _ in range(100)
            ]
            status, body = await conn.post("/v0/destinations/gainsight", orjson.dumps(items))
            answers = orjson.loads(body)
            assert status == 200 and len(answers) == 100
            done += 100
            errors += sum(1 for a in answers if a["statusCode"] != 200)
        conn.close()

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.monotonic() - start), errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--companies", type=int, default=50)
    args = parser.parse_args()
    bars = {"identify": 3 * 9_300, "track": 3 * 13_600, "group": 10 * 780}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "d.json").write_bytes(orjson.dumps([{"id": "bench", "config": CONFIG}]))
        sim_args = [
            "simulator",
            "--rate-limit-per-minute",
            "100000000",
            "--rate-limit-per-day",
            "1000000000",
            "--log-level",
            "warning",
        ]
        with ingest.started(sim_args, {}, "/__sim/counters", workdir) as sim:
            env = {
                "GSD_DESTINATIONS": str(workdir / "d.json"),
                "GSD_STORE_URL": f"sqlite:///{workdir}/q.db",
                "GSD_GAINSIGHT_BASE_URL": sim.base_url,
                "GSD_LOG_LEVEL": "warning",
                # "Instant Gainsight": the budget is not what this measures.
                "GSD_RATE_LIMIT_PER_MINUTE": "100000000",
                "GSD_RATE_LIMIT_PER_DAY": "1000000000",
            }
            with ingest.started(["serve"], env, "/health", workdir) as service:
                print(
                    f"processor endpoint, 100 events/request, {args.connections} connections, "
                    f"{args.seconds:.0f} s per phase"
                )
                for kind in ("identify", "track", "group"):
                    before = (service.cpu_seconds(), sim.cpu_seconds(), time.process_time())
                    rate, errors = asyncio.run(
                        phase(kind, service.base_url, args.seconds, args.connections, args.companies)
                    )
                    spent = (
                        service.cpu_seconds() - before[0],
                        sim.cpu_seconds() - before[1],
                        time.process_time() - before[2],
                    )
                    line = f"  {kind:<8} {rate:>9,.0f} events/s (bar >= {bars[kind]:,}), {errors} error items"
                    line += (
                        f"; CPU s: service {spent[0]:.1f}, simulator {spent[1]:.1f}, generator {spent[2]:.1f}"
                    )
                    print(line)
                companies = httpx.get(sim.base_url + "/__sim/companies").json()
                names = [c["Name"] for c in companies]
                duplicates = len(names) - len(set(names))
                print(
                    f"  group: {len(names)} companies in the simulator for {args.companies} names, "
                    f"{duplicates} duplicate creates"
                )


if __name__ == "__main__":
    main()
