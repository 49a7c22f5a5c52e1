"""What the /status page shows, per destination (DESIGN §9), gathered from the store and metrics.

Degraded (`is_degraded`), per destination: it made a dead letter within the last hour that is
still one (not replayed or purged since), or its newest DEGRADED_FAILURES attempts answered by
Gainsight (or by the network) all failed: throttled, retryable or aborted, with no delivery
since. Filtered and rejected events are decisions made here, not answers: they neither count nor
end a run of failures; nor do `unchanged` ones, which make no call. Only the newest DEGRADED_SCAN
attempts are looked at. It is shown on the page and as `gsd_destination_degraded`, and never
fails readiness: the service still accepts and keeps events, and delivers them once fixed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from destination.config import Destination
from destination.delivery.governor import TIMELINE_MINUTE, RateWindow
from destination.delivery.store import FAILED_OUTCOMES, AttemptRecord, DeadLetter, EventSummary, Store
from destination.delivery.views import EVENT_STATES_SHOWN
from destination.settings import Settings
from destination.usage_status import UsageToday, usage_today

HOUR = 3600.0
DAY = 86_400.0
DEGRADED_FAILURES = 3  # consecutive failed attempts that make a destination degraded
DEGRADED_SCAN = 50  # the newest attempts of a destination looked at for them
LATEST_SHOWN = 5  # the latest rejected and filtered events of the last day listed
SAVED_REASONS = ("coalesced", "unchanged", "company_batched", "gsid_known")
FINISHED_SHOWN = ("delivered", "unchanged", "counted", "filtered", "rejected", "dead")


@dataclass(frozen=True)
class Budget:
    window: str
    used: int
    limit: int


@dataclass(frozen=True)
class DestinationStatus:
    id: str
    domain: str
    degraded: bool
    queue: dict[str, int]
    last_hour: dict[str, int]
    last_day: dict[str, int]
    budget: tuple[Budget, ...]
    saved: dict[str, int]
    errors: tuple[AttemptRecord, ...]  # `state` delivered or unchanged: resolved since
    dead_letters: tuple[DeadLetter, ...]
    rejected: tuple[EventSummary, ...]  # the latest of the last day, newest first
    filtered: tuple[EventSummary, ...]
    usage: UsageToday | None = None  # today's usage counts, when the destination counts usage


def consecutive_failures(recent: Sequence[AttemptRecord]) -> int:
    """Failed attempts (newest first) before the newest delivery; decisions made here skipped."""
    failed = 0
    for record in recent:
        if record.attempt.outcome in FAILED_OUTCOMES:
            failed += 1
        elif record.attempt.outcome == "delivered":
            break
    return failed


def is_degraded(recent: Sequence[AttemptRecord], fresh_dead_letters: int) -> bool:
    """See the module's docstring: `recent` newest first, `fresh_dead_letters` of the last hour."""
    return fresh_dead_letters > 0 or consecutive_failures(recent) >= DEGRADED_FAILURES


async def degraded_destinations(
    store: Store, destination_ids: list[str], now: float | None = None
) -> dict[str, bool]:
    hour = await store.finished_counts((time.time() if now is None else now) - HOUR)
    return {
        destination_id: is_degraded(
            await store.recent_attempts(destination_id, DEGRADED_SCAN),
            hour.get(destination_id, {}).get("dead", 0),
        )
        for destination_id in destination_ids
    }


def rate_windows(settings: Settings) -> tuple[RateWindow, ...]:
    """The tenant budget's windows, as the rate governors count them (Timeline's minute apart)."""
    return (
        RateWindow("minute", settings.rate_minute_seconds, settings.rate_limit_per_minute),
        RateWindow("day", settings.rate_day_seconds, settings.rate_limit_per_day),
        RateWindow(TIMELINE_MINUTE, settings.rate_minute_seconds, settings.timeline_rate_limit_per_minute),
    )


def calls_saved(registry: CollectorRegistry) -> dict[str, dict[str, int]]:
    """{destination: {reason: n}} from gsd_calls_saved_total, when the service counts it."""
    found: dict[str, dict[str, int]] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "gsd_calls_saved_total":
                destination = sample.labels.get("destination", "")
                reason = sample.labels.get("reason", "")
                found.setdefault(destination, {})[reason] = int(sample.value)
    return found


async def gather(
    store: Store,
    destinations: dict[str, Destination],
    settings: Settings,
    registry: CollectorRegistry,
    now: float | None = None,
    *,
    errors_shown: int = 10,
    dead_letters_shown: int = 50,
) -> list[DestinationStatus]:
    now = time.time() if now is None else now
    queue = await store.counts_by_destination()
    hour = await store.finished_counts(now - HOUR)
    day = await store.finished_counts(now - DAY)
    saved = calls_saved(registry)
    windows = rate_windows(settings)
    found = []
    for destination_id in sorted(destinations):
        domain = destinations[destination_id].config.domain or ""
        used = await store.budget_used(domain, [(w.name, w.start(now)) for w in windows])
        recent = await store.recent_attempts(destination_id, DEGRADED_SCAN)
        found.append(
            DestinationStatus(
                id=destination_id,
                domain=domain,
                degraded=is_degraded(recent, hour.get(destination_id, {}).get("dead", 0)),
                queue=_all(queue.get(destination_id, {}), EVENT_STATES_SHOWN),
                last_hour=_all(hour.get(destination_id, {}), FINISHED_SHOWN),
                last_day=_all(day.get(destination_id, {}), FINISHED_SHOWN),
                budget=tuple(Budget(w.name, used.get(w.name, 0), w.limit) for w in windows),
                saved=_all(saved.get(destination_id, {}), SAVED_REASONS),
                errors=tuple(await store.recent_attempts(destination_id, errors_shown, failed_only=True)),
                dead_letters=tuple(await store.list_dead_letters(destination_id, dead_letters_shown)),
                rejected=await _latest(store, destination_id, "rejected", now),
                filtered=await _latest(store, destination_id, "filtered", now),
                usage=await usage_today(store, destinations[destination_id], now),
            )
        )
    return found


async def _latest(store: Store, destination_id: str, state: str, now: float) -> tuple[EventSummary, ...]:
    return tuple(await store.latest_finished(destination_id, state, now - DAY, LATEST_SHOWN))


def _all(counts: dict[str, Any], keys: tuple[str, ...]) -> dict[str, int]:
    """Every key shown, zeros included, then any other the store reports."""
    shown = {key: int(counts.get(key, 0)) for key in keys}
    shown.update({k: int(v) for k, v in counts.items() if k not in shown})
    return shown
