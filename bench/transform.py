"""Pure-transform throughput on one core (DESIGN §8: ≥ 50,000 identify or track events/s).

Plans realistic identify and track events (no I/O) in a loop and prints events/s for each.
`plan` is what the worker does per event; `plan+sign` adds the X-Payload-Signature JWT that is
made at send time for track. Run: python bench/transform.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from destination.config import parse_destination_config
from destination.gainsight.plan import plan_event
from destination.gainsight.signing import sign
from destination.gainsight.track_plan import TrackPlan
from destination.mapping.spec import default_specs

CONFIG = parse_destination_config(
    {
        "domain": "acme.gainsightcloud.com",
        "accessKey": "bench-access-key",
        "sharedSecret": "bench-shared-secret-of-reasonable-length",
        "tenantId": "tenant-1",
        "topicName": "Product",
        "eventNameMap": [{"from": f"Event {i}", "to": f"event_{i}"} for i in range(20)],
        "eventVersionMap": [{"from": f"Event {i}", "to": "1.0"} for i in range(20)],
        "personMap": [{"from": "seats", "to": "Seats__gc"}, {"from": "plan", "to": "Plan__gc"}],
    }
)


def identify(i: int) -> dict[str, object]:
    return {
        "type": "identify",
        "messageId": f"m-{i}",
        "userId": f"u-{i}",
        "anonymousId": f"a-{i}",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "context": {
            "library": {"name": "analytics-node", "version": "1.0"},
            "traits": {"email": f"user{i}@example.com"},
            "ip": "10.0.0.1",
        },
        "traits": {
            "email": f"user{i}@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "title": "Engineer",
            "seats": i % 50,
            "plan": "gold",
            "location": {"city": "London", "country": "UK"},
            "timezone": "Europe/London",
        },
    }


def track(i: int) -> dict[str, object]:
    return {
        "type": "track",
        "event": f"Event {i % 20}",
        "messageId": f"m-{i}",
        "userId": f"u-{i}",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "context": {"library": {"name": "analytics-node"}, "traits": {"email": f"user{i}@example.com"}},
        "properties": {
            "ticketId": f"T-{i}",
            "status": "resolved",
            "priority": i % 5,
            "tags": ["a", "b"],
            "amount": 12.5,
        },
    }


def measure(
    label: str, events: list[dict[str, object]], work: Callable[[dict[str, object]], object], seconds: float
) -> float:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for event in events:
            work(event)
        done += len(events)
    rate = done / (time.perf_counter() - start)
    print(f"{label:<22} {rate:>12,.0f} events/s")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core
    specs = default_specs()
    identifies = [identify(i) for i in range(1000)]
    tracks = [track(i) for i in range(1000)]
    secret = CONFIG.shared_secret.get_secret_value() if CONFIG.shared_secret else ""

    def plan_and_sign(event: dict[str, object]) -> object:
        plan = plan_event(event, CONFIG, specs)
        assert isinstance(plan, TrackPlan) and plan.request.signing is not None
        return sign(plan.request.signing, secret, time.time())

    print(f"pure transform, one core, {args.seconds:.0f} s each (bar: >= 50,000 events/s)")
    measure("identify plan", identifies, lambda e: plan_event(e, CONFIG, specs), args.seconds)
    measure("track plan", tracks, lambda e: plan_event(e, CONFIG, specs), args.seconds)
    measure("track plan+sign", tracks, plan_and_sign, args.seconds)


if __name__ == "__main__":
    main()
