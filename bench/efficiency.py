"""Gainsight calls per 1,000 mixed events on the whole delivery path (DESIGN §6, §8).

Bars: at the floor (≤ floor + 2%) for the seed-7 workload, and again for the same events sent a
second time with new messageIds (what SDKs do on every page load). The reference spends 1,200.

Workload (seed 7): 1,000 events, 60% track, 30% identify, 10% group, 300 people, 50 companies;
identify traits and group traits are fixed per person / company, as an SDK resends them.

Set-up: the simulator runs as Gainsight (budget out of the way); every event is queued BEFORE
delivery starts (written into the service's SQLite store through the store API, as ingest writes
them), then the real service (`python -m destination serve`, bench/ingest.py's starter) starts on
that store and delivers the backlog. Calls are the simulator's count of requests it received.
Pass 2 stops the service, queues the same events with new messageIds, and starts it again (the
Gsids and the delivered state it remembers are in the store, so a restart keeps them).

Floor: one call per track; one Person upsert per person run (a person's consecutive identify and
group events, up to their next track); ⌈new companies / 50⌉ searches and as many inserts. Pass 2:
the tracks, plus the runs that would change what Gainsight holds (computed from the events).

`--keyed`: the destination keys companies by SfdcAccountId from groupId (companyIdentity, DESIGN
§3.3) instead of Name; the floor is the same, counted by key.

`--timeline`: a fifth of the track events are "Meeting Booked", allow-listed as Timeline activities
(DESIGN §3.6, alsoPublish false), each carrying its person's company as `context.groupId`; companies
keyed as with `--keyed`, and written by a set-up delivery (one group event each, not counted) so
every activity finds its company. Prints the sync calls against the floor with every track
published (the sync calls saved) and the Timeline calls made.

`--usage`: a day of product usage (100,000 track events) counted into a usage object instead
(DESIGN §3.7; bench/usage_day.py, with its own options: --events, --people, --companies, --store).

Run: python bench/efficiency.py [--keyed] [--timeline] | --usage
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import math
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
import ingest  # noqa: E402  (bench/ingest.py: the shared process starter)

from destination.delivery.sqlite import SQLiteStore  # noqa: E402
from destination.delivery.store import NewEvent  # noqa: E402
from destination.events import ordering_key  # noqa: E402

CONFIG = ingest.sandbox_config("acme.gainsightcloud.com")
KEYED = {"field": "SfdcAccountId", "from": "groupId", "create": True}
REFERENCE_CALLS = {"track": 1, "identify": 1, "group": 3}
ACTIVITY = "Meeting Booked"
TIMELINE_ENDPOINT = "timeline.activity"  # the simulator's name for Timeline's single-activity save
TIMELINE = {"author": "integration@acme.com", "activities": [{"event": ACTIVITY, "type": "Meeting"}]}


def workload(seed: int, events: int, people: int, companies: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    kinds = ["track"] * (events * 6 // 10) + ["identify"] * (events * 3 // 10)
    kinds += ["group"] * (events - len(kinds))
    rng.shuffle(kinds)
    out = []
    for n, kind in enumerate(kinds):
        person = rng.randrange(people)
        email = f"user{person}@example.com"
        base: dict[str, Any] = {"messageId": f"m-{n}", "userId": f"u-{person}"}
        if kind == "identify":
            traits = {"email": email, "firstName": f"First{person}", "lastName": "L", "seats": person % 40}
            out.append({**base, "type": "identify", "traits": traits})
        elif kind == "group":
            c = rng.randrange(companies)
            traits = {"name": f"Company {c}", "employees": 10 + c, "region": "EMEA" if c % 2 else "APAC"}
            context = {"traits": {"email": email}}
            out.append(
                {**base, "type": "group", "groupId": f"acct-{c}", "traits": traits, "context": context}
            )
        else:
            properties = {"ticketId": f"T-{n}", "n": n}
            context = {"traits": {"email": email}}
            out.append(
                {
                    **base,
                    "type": "track",
                    "event": "Ticket Closed",
                    "properties": properties,
                    "context": context,
                }
            )
    return out


def with_activities(events: list[dict[str, Any]], companies: int) -> list[dict[str, Any]]:
    """Every fifth track event becomes a Timeline activity on its person's company (groupId)."""
    out, tracks = [], 0
    for event in events:
        if event["type"] == "track":
            tracks += 1
            if tracks % 5 == 0:
                person = int(event["userId"].removeprefix("u-"))
                context = {**event["context"], "groupId": f"acct-{person % companies}"}
                event = {**event, "event": ACTIVITY, "context": context}
        out.append({**event, "timestamp": "2026-12-06T10:00:00Z"})
    return out


def set_up_companies(companies: int) -> list[dict[str, Any]]:
    """One group event per company, by a person of its own: every company exists before the
    measured delivery."""
    return [
        {
            "messageId": f"setup-{c}",
            "userId": f"setup-{c}",
            "type": "group",
            "groupId": f"acct-{c}",
            "traits": {"name": f"Company {c}", "employees": 10 + c, "region": "EMEA" if c % 2 else "APAC"},
            "context": {"traits": {"email": f"setup{c}@example.com"}},
        }
        for c in range(companies)
    ]


def company_of(event: dict[str, Any], keyed: bool) -> str:
    return str(event["groupId"]) if keyed else str(event["traits"]["name"])


def floor(
    events: Sequence[dict[str, Any]],
    known: dict[str, Any],
    keyed: bool = False,
    activities: frozenset[str] = frozenset(),
) -> int:
    """The fewest sync calls that leave Gainsight as sending each event would, in per-person
    order. `known` is what Gainsight holds already (people: traits and companies; company names);
    it is updated with these events. A track named in `activities` is a Timeline call (not sync),
    in its place in the person's order all the same."""
    people: dict[str, Any] = known.setdefault("people", {})
    companies: set[str] = known.setdefault("companies", set())
    calls = 0
    runs: dict[str, tuple[dict[str, Any], set[str]]] = {}  # person -> open run (traits, companies)

    def close(person: str) -> int:
        run = runs.pop(person, None)
        if run is None:
            return 0
        traits, linked = run
        held_traits, held_links = people.setdefault(person, ({}, set()))
        changes = any(held_traits.get(k) != v for k, v in traits.items()) or not linked <= held_links
        held_traits.update(traits)
        held_links |= linked
        return 1 if changes else 0

    new_companies = set()
    for event in events:
        person = ordering_key(event)
        if event["type"] == "track":
            calls += close(person) + (0 if event["event"] in activities else 1)
            continue
        traits, linked = runs.setdefault(person, ({}, set()))
        if event["type"] == "identify":
            traits.update(event["traits"])
        else:
            company = company_of(event, keyed)
            linked.add(company)
            if company not in companies:
                new_companies.add(company)
    for person in list(runs):
        calls += close(person)
    companies |= new_companies
    return calls + 2 * math.ceil(len(new_companies) / 50)


async def enqueue(store_path: Path, events: Sequence[dict[str, Any]]) -> None:
    store = SQLiteStore(store_path)
    now = time.time()
    await store.enqueue(
        [NewEvent("bench", e["messageId"], ordering_key(e), e["type"], orjson.dumps(e), now) for e in events]
    )
    await store.close()


def sim_calls(sim: ingest.Service) -> dict[str, int]:
    endpoints = httpx.get(sim.base_url + "/__sim/counters").json()["endpoints"]
    return {name: int(counts["calls"]) for name, counts in endpoints.items()}


def saved(service: ingest.Service) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(service.base_url + "/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gsd_calls_saved_total":
                found[sample.labels["reason"]] = found.get(sample.labels["reason"], 0) + sample.value
    return found


def queue_done(service: ingest.Service) -> bool:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(service.base_url + "/metrics", timeout=10).text
    waiting = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gsd_queue_events" and sample.labels["state"] in ("queued", "leased"):
                waiting += sample.value
    return waiting == 0


def deliver(
    workdir: Path, env: dict[str, str], sim: ingest.Service, timeout: float
) -> tuple[dict[str, int], dict[str, float], float]:
    """Start the service on the queued store, wait until the queue is empty, stop it."""
    before = sim_calls(sim)
    started = time.monotonic()
    with ingest.started(["serve"], env, "/health", workdir) as service:
        while not queue_done(service):
            if time.monotonic() - started > timeout:
                raise RuntimeError("the backlog was not delivered in time")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        savings = saved(service)
    after = sim_calls(sim)
    return (
        {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)},
        savings,
        elapsed,
    )


def report(
    name: str,
    events: Sequence[dict[str, Any]],
    calls: dict[str, int],
    savings: dict[str, float],
    bar: int,
    seconds: float,
) -> bool:
    total = sum(n for name, n in calls.items() if name != TIMELINE_ENDPOINT)  # sync calls
    per_1000 = total * 1000 / len(events)
    reference = sum(REFERENCE_CALLS[e["type"]] for e in events) * 1000 / len(events)
    ok = total <= bar * 1.02
    print(
        f"{name}: {per_1000:,.0f} calls per 1,000 events (floor {bar * 1000 / len(events):,.0f}, "
        f"bar <= floor + 2% = {bar * 1.02 * 1000 / len(events):,.0f}; reference {reference:,.0f}) "
        f"{'OK' if ok else 'ABOVE THE BAR'}; delivered in {seconds:.1f} s"
    )
    print("    calls: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
    print(
        "    saved (service's gsd_calls_saved_total, cumulative): "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(savings.items()))
    )
    return ok


def timeline_figures(
    events: Sequence[dict[str, Any]], calls: dict[str, int], published: int, sim: ingest.Service
) -> None:
    """The sync calls the Timeline activities saved, and the Timeline calls they made. Published
    instead, each allow-listed event would be one more publish in the same place of its person's
    order, the person runs unchanged: the measured sync calls plus one per activity written."""
    sync = sum(n for name, n in calls.items() if name != TIMELINE_ENDPOINT)
    allowed = sum(e["type"] == "track" and e["event"] == ACTIVITY for e in events)
    tracks = sum(e["type"] == "track" for e in events)
    written = len(httpx.get(sim.base_url + "/__sim/activities").json())
    timeline = calls.get(TIMELINE_ENDPOINT, 0)
    print(
        f"    timeline: {allowed} of {tracks} track events allow-listed; Timeline calls made {timeline}, "
        f"activities in Gainsight {written}; sync calls {sync}, against {sync + written} with every "
        f"track published: {written} sync calls saved (floors: {published} all published, "
        f"{published - allowed} with Timeline)"
    )


def main() -> None:
    if "--usage" in sys.argv[1:]:  # a day of product usage as usage counts (bench/usage_day.py)
        import usage_day

        sys.exit(0 if usage_day.run(usage_day.arguments(sys.argv[1:])) else 1)
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keyed", action="store_true", help="companies keyed by SfdcAccountId")
    parser.add_argument(
        "--timeline", action="store_true", help="a fifth of the tracks are Timeline activities"
    )
    args = parser.parse_args()
    args.keyed = args.keyed or args.timeline
    config = {**CONFIG, "companyIdentity": KEYED} if args.keyed else CONFIG
    first = workload(args.seed, args.events, args.people, args.companies)
    setup: list[dict[str, Any]] = []
    activities: frozenset[str] = frozenset()
    known: dict[str, Any] = {}
    if args.timeline:
        config = {**config, "timeline": TIMELINE}
        first, setup, activities = (
            with_activities(first, args.companies),
            set_up_companies(args.companies),
            frozenset({ACTIVITY}),
        )
        floor(setup, known, keyed=True)
    second = [{**e, "messageId": "again-" + e["messageId"]} for e in first]
    published = floor(first, copy.deepcopy(known), args.keyed)  # every track published
    floors = (floor(first, known, args.keyed, activities), floor(second, known, args.keyed, activities))
    mix = ", ".join(
        f"{sum(e['type'] == kind for e in first)} {kind}" for kind in ("track", "identify", "group")
    )
    print(
        f"workload: seed {args.seed}, {len(first)} events ({mix}), "
        f"{args.people} people, {args.companies} companies, keyed by "
        + ("SfdcAccountId (companyIdentity)" if args.keyed else "Name")
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "d.json").write_bytes(orjson.dumps([{"id": "bench", "config": config}]))
        store = workdir / "q.db"
        sim_args = [
            "simulator",
            "--rate-limit-per-minute",
            "100000000",
            "--rate-limit-per-day",
            "1000000000",
            "--timeline-rate-limit-per-minute",
            "100000000",
            "--log-level",
            "warning",
        ]
        env = {
            "GSD_DESTINATIONS": str(workdir / "d.json"),
            "GSD_STORE_URL": f"sqlite:///{store}",
            "GSD_LOG_LEVEL": "warning",
            "GSD_RATE_LIMIT_PER_MINUTE": "100000000",  # an instant Gainsight: calls, not budget
            "GSD_RATE_LIMIT_PER_DAY": "1000000000",
            "GSD_TIMELINE_RATE_LIMIT_PER_MINUTE": "100000000",
        }
        with ingest.started(sim_args, {}, "/__sim/counters", workdir) as sim:
            env["GSD_GAINSIGHT_BASE_URL"] = sim.base_url
            if setup:
                asyncio.run(enqueue(store, setup))
                deliver(workdir, env, sim, args.timeout)
            results = []
            for name, events, bar in (
                ("pass 1 (new)", first, floors[0]),
                ("pass 2 (sent again)", second, floors[1]),
            ):
                asyncio.run(enqueue(store, events))
                calls, savings, seconds = deliver(workdir, env, sim, args.timeout)
                results.append(report(name, events, calls, savings, bar, seconds))
                if args.timeline and name.startswith("pass 1"):
                    timeline_figures(first, calls, published, sim)
            key = "SfdcAccountId" if args.keyed else "Name"
            companies = [c[key] for c in httpx.get(sim.base_url + "/__sim/companies").json()]
            duplicates = len(companies) - len(set(companies))
            print(f"companies in Gainsight: {len(companies)}, duplicate creates: {duplicates}")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
