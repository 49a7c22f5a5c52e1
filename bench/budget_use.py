"""Budget use (DESIGN §8): how much of a 100/minute budget the service spends, and the 429s it gets.

Bar: ≥ 95% of the budget used in every window, zero 429s.

Set-up: `--backlog` track events (default 5,000, far more than the windows measured can deliver;
bench/drain.py's events, spread over `--people` people) are written into an empty SQLite store
through the store API before the service starts. The simulator runs as Gainsight with a budget of
100 calls per window, and the real service (`python -m destination serve`, bench/ingest.py's
starter) delivers the backlog with GSD_RATE_LIMIT_PER_MINUTE=100. Both sides' windows are
`--minute-seconds` long (default 60; shorter for a quick run) and start on the same boundaries
(index = floor(epoch seconds / length)). The window in which the service starts is skipped; the
next `--windows` windows are measured from the simulator's request log (each request's time and
answer): calls Gainsight received, the % of the 100 used, and the 429s it answered. The simulator's
/__sim/counters give the totals and its own check that nothing was let through over budget.

Run: python bench/budget_use.py [--minute-seconds 60] [--windows 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import drain  # noqa: E402  (bench/drain.py: the track events and the store writer)
import ingest  # noqa: E402  (bench/ingest.py: the shared starter and config)

BUDGET = 100
BAR_USED = 0.95
CONFIG = ingest.sandbox_config("acme.gainsightcloud.com")


def wait_for_boundary(length: float) -> int:
    """Sleep until the next window starts; its index."""
    index = math.floor(time.time() / length) + 1
    time.sleep(max(0.0, index * length - time.time()))
    return index


def per_window(requests: list[dict[str, Any]], length: float) -> dict[int, Counter[str]]:
    """Per window index: calls answered, of them 429s, and calls by endpoint."""
    windows: dict[int, Counter[str]] = {}
    for request in requests:
        if request["status"] is None:  # no HTTP answer: never reached the budget
            continue
        counts = windows.setdefault(math.floor(request["time"] / length), Counter())
        counts["calls"] += 1
        counts["429"] += request["status"] == 429
        counts[f"  {request['endpoint']}"] += 1
    return windows


def report(windows: dict[int, Counter[str]], first: int, count: int, counters: dict[str, Any]) -> bool:
    met = True
    for index in range(first, first + count):
        counts = windows.get(index, Counter())
        used = counts["calls"] / BUDGET
        ok = used >= BAR_USED and counts["429"] == 0
        met = met and ok
        endpoints = ", ".join(f"{k.strip()} {v}" for k, v in sorted(counts.items()) if k.startswith(" "))
        print(
            f"window {index - first + 1}: {counts['calls']:>4} calls, {used:6.1%} of {BUDGET} used, "
            f"{counts['429']} x 429  {'met' if ok else 'NOT MET'}   ({endpoints})"
        )
    total = counters["total"]
    print(
        f"simulator totals over the run: {total['calls']} calls, {total['throttled']} throttled (429), "
        f"over budget accepted {counters['over_budget_accepted']}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minute-seconds", type=float, default=60.0, help="both sides' window length")
    parser.add_argument("--windows", type=int, default=3, help="windows measured")
    parser.add_argument("--backlog", type=int, default=5_000, help="track events queued before start-up")
    parser.add_argument("--people", type=int, default=500)
    args = parser.parse_args()
    length = args.minute_seconds
    with tempfile.TemporaryDirectory(prefix="gsd-budget-") as tmp:
        workdir = Path(tmp)
        store = workdir / "gsd.sqlite3"
        (workdir / "d.json").write_bytes(orjson.dumps([{"id": "bench", "config": CONFIG}]))
        asyncio.run(drain.enqueue(f"sqlite:///{store}", drain.tracks(args.backlog, args.people)))
        sim_args = ["simulator", "--rate-limit-per-minute", str(BUDGET), "--minute-seconds", str(length)]
        sim_args += ["--log-level", "warning"]
        with ingest.started(sim_args, {}, "/__sim/counters", workdir) as sim:
            env = {
                "GSD_DESTINATIONS": str(workdir / "d.json"),
                "GSD_STORE_URL": f"sqlite:///{store}",
                "GSD_AUTH": "off",
                "GSD_LOG_LEVEL": "warning",
                "GSD_GAINSIGHT_BASE_URL": sim.base_url,
                "GSD_RATE_LIMIT_PER_MINUTE": str(BUDGET),
                "GSD_RATE_MINUTE_SECONDS": str(length),
            }
            print(
                f"budget {BUDGET} per {length:g} s window on both sides; {args.backlog:,} track events "
                f"queued ({args.people} people); measuring {args.windows} windows after the start-up one",
                flush=True,
            )
            with ingest.started(["serve"], env, "/health", workdir) as service:
                first = wait_for_boundary(length)
                time.sleep(max(0.0, (first + args.windows) * length - time.time()) + 0.5)
                requests = httpx.get(sim.base_url + "/__sim/requests", timeout=30).json()
                counters = httpx.get(sim.base_url + "/__sim/counters", timeout=30).json()
                queue = httpx.get(service.base_url + "/ready", timeout=30).json()["queue"]
                cpu = service.cpu_seconds()
    met = report(per_window(requests, length), first, args.windows, counters)
    left = queue.get("queued", 0)
    ran_out = "" if left else " (the backlog ran out: the figures understate use)"
    print(f"queued at the end: {left:,}{ran_out}")
    print(f"service CPU-seconds: {cpu:.1f}; bar (>= 95% used, 0 x 429): {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
