"""Memory with a large backlog queued (DESIGN §8): the service's RSS while N events wait.

Bar: RSS ≤ 200 MB with 1,000,000 events queued.

Set-up: `--events` track events (default 1,000,000; bench/ingest.py's events, `--people` people)
are written into an empty SQLite store through the store API, as ingest writes them, in batches of
1,000, before the service starts. Then the real service (`python -m destination serve`, bench/
ingest.py's starter) runs on that store against the simulator with the default budget on both
sides (100 calls/minute), so it works as in production with a backlog: its workers claim runs,
check the budget, deliver 100 events a minute and put the rest back, while the backlog stays
queued. Every `--sample` seconds for `--seconds`, the status page (admin token), /metrics and
/ready are fetched and one line printed: the service's RSS, its CPU-seconds so far, the queue, and
the calls Gainsight received. At the end: RSS at start-up, its peak (the kernel's high-water mark,
VmHWM, so a peak between samples counts too) and at the end, against the bar, and the service's
CPU-seconds.

Run: python bench/queued_rss.py [--events 1000000] [--seconds 180] [--sample 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import ingest  # noqa: E402  (bench/ingest.py: the shared starter, config and backlog writer)
import soak  # noqa: E402  (bench/soak.py: RSS and store-size readings)

BAR_MB = 200
ADMIN_TOKEN = "bench-admin-token"
BUDGET = "100"  # calls per minute, both sides: the default
# bench/ingest.py's events are "Feature Used" tracks: the sandbox tenant's config, mapped for them.
CONFIG = {
    **ingest.sandbox_config("acme.gainsightcloud.com"),
    "eventNameMap": [{"from": "Feature Used", "to": "feature_used"}],
    "eventVersionMap": [{"from": "Feature Used", "to": "1.0"}],
}


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def scrape(service: ingest.Service) -> dict[str, int]:
    """What an operator's dashboard fetches: the status page and /metrics; the queue from /ready."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    page = httpx.get(service.base_url + "/status", headers=admin, timeout=60)
    if page.status_code != 200:
        raise RuntimeError(f"/status answered {page.status_code}")
    httpx.get(service.base_url + "/metrics", timeout=60).raise_for_status()
    queue: dict[str, int] = httpx.get(service.base_url + "/ready", timeout=60).json()["queue"]
    return queue


def gainsight_calls(sim: ingest.Service) -> int:
    return int(httpx.get(sim.base_url + "/__sim/counters", timeout=10).json()["total"]["calls"])


def watch(service: ingest.Service, sim: ingest.Service, args: argparse.Namespace) -> list[float]:
    """Sample every `args.sample` seconds for `args.seconds`; the RSS readings in MB."""
    started = time.monotonic()
    readings = []
    while True:
        queue = scrape(service)
        rss = soak.rss_mb(service.process.pid)
        readings.append(rss)
        waiting = queue.get("queued", 0) + queue.get("leased", 0)
        print(
            f"{time.monotonic() - started:6.0f} s  RSS {rss:6.1f} MB  CPU {service.cpu_seconds():6.1f} s  "
            f"queued {waiting:>9,}  delivered {queue.get('delivered', 0):>6,}  "
            f"Gainsight calls {gainsight_calls(sim):>6,}",
            flush=True,
        )
        if time.monotonic() - started >= args.seconds:
            return readings
        time.sleep(args.sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events queued before start-up")
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=180.0, help="how long the service runs")
    parser.add_argument("--sample", type=float, default=15.0, help="seconds between samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gsd-queued-rss-") as tmp:
        workdir = Path(tmp)
        store = workdir / "gsd.sqlite3"
        (workdir / "d.json").write_bytes(orjson.dumps([{"id": "bench", "config": CONFIG}]))
        began = time.monotonic()
        ingest.queue_backlog(f"sqlite:///{store}", args.events, args.people)
        print(
            f"  written in {time.monotonic() - began:.0f} s; store {soak.on_disk_mb(store):,.0f} MB on disk",
            flush=True,
        )
        sim_args = ["simulator", "--rate-limit-per-minute", BUDGET, "--log-level", "warning"]
        with ingest.started(sim_args, {}, "/__sim/counters", workdir) as sim:
            env = {
                "GSD_DESTINATIONS": str(workdir / "d.json"),
                "GSD_STORE_URL": f"sqlite:///{store}",
                "GSD_AUTH": "off",
                "GSD_ADMIN_TOKEN": ADMIN_TOKEN,
                "GSD_LOG_LEVEL": "warning",
                "GSD_GAINSIGHT_BASE_URL": sim.base_url,
                "GSD_RATE_LIMIT_PER_MINUTE": BUDGET,
            }
            began = time.monotonic()
            with ingest.started(["serve"], env, "/health", workdir) as service:
                pid = service.process.pid
                print(
                    f"service up in {time.monotonic() - began:.1f} s: RSS {soak.rss_mb(pid):.1f} MB, "
                    f"CPU {service.cpu_seconds():.1f} s; sampling every {args.sample:g} s "
                    f"for {args.seconds:g} s",
                    flush=True,
                )
                readings = watch(service, sim, args)
                peak, cpu = vm_kb(pid, "VmHWM") / 1024, service.cpu_seconds()
    print(
        f"\n{args.events:,} events queued: RSS at the first sample {readings[0]:.1f} MB, at the end "
        f"{readings[-1]:.1f} MB, peak (VmHWM) {peak:.1f} MB; bar <= {BAR_MB} MB: "
        f"{'met' if peak <= BAR_MB else 'NOT MET'}"
    )
    print(f"service CPU-seconds, start-up included: {cpu:.1f}")


if __name__ == "__main__":
    main()
