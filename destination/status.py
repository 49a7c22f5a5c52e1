"""What the /status page shows, per destination (DESIGN §9), gathered from the store and metrics.

Degraded: a destination whose recent attempts all failed (say every call gets 401 because the
access key was rotated). It is shown on the page and as `gsd_destination_degraded`, and never
fails readiness: the service still accepts and keeps events, and delivers them once fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from destination.config import Destination
from destination.delivery.governor import RateWindow
from destination.delivery.store import FAILED_OUTCOMES, AttemptRecord, DeadLetter, Store
from destination.delivery.views import EVENT_STATES_SHOWN
from destination.settings import Settings

HOUR = 3600.0
DAY = 86_400.0
DEGRADED_SAMPLE = 5  # the newest attempts looked at
DEGRADED_MINIMUM = 3  # fewer attempts than this say too little to call a destination degraded
SAVED_REASONS = ("coalesced", "unchanged", "company_batched", "gsid_known")
FINISHED_SHOWN = ("delivered", "unchanged", "filtered", "rejected", "dead")


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
    errors: tuple[AttemptRecord, ...]
    dead_letters: tuple[DeadLetter, ...]


def is_degraded(recent: list[AttemptRecord]) -> bool:
    """Every one of the newest attempts failed (and there were enough to tell)."""
    sample = recent[:DEGRADED_SAMPLE]
    return len(sample) >= DEGRADED_MINIMUM and all(r.attempt.outcome in FAILED_OUTCOMES for r in sample)


async def degraded_destinations(store: Store, destination_ids: list[str]) -> dict[str, bool]:
    return {
        destination_id: is_degraded(await store.recent_attempts(destination_id, DEGRADED_SAMPLE))
        for destination_id in destination_ids
    }


def rate_windows(settings: Settings) -> tuple[RateWindow, ...]:
    """The tenant budget's windows, as the rate governor counts them."""
    return (
        RateWindow("minute", settings.rate_minute_seconds, settings.rate_limit_per_minute),
        RateWindow("day", settings.rate_day_seconds, settings.rate_limit_per_day),
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
        recent = await store.recent_attempts(destination_id, max(errors_shown, DEGRADED_SAMPLE))
        found.append(
            DestinationStatus(
                id=destination_id,
                domain=domain,
                degraded=is_degraded(recent),
                queue=_all(queue.get(destination_id, {}), EVENT_STATES_SHOWN),
                last_hour=_all(hour.get(destination_id, {}), FINISHED_SHOWN),
                last_day=_all(day.get(destination_id, {}), FINISHED_SHOWN),
                budget=tuple(Budget(w.name, used.get(w.name, 0), w.limit) for w in windows),
                saved=_all(saved.get(destination_id, {}), SAVED_REASONS),
                errors=tuple(await store.recent_attempts(destination_id, errors_shown, failed_only=True)),
                dead_letters=tuple(await store.list_dead_letters(destination_id, dead_letters_shown)),
            )
        )
    return found


def _all(counts: dict[str, Any], keys: tuple[str, ...]) -> dict[str, int]:
    """Every key shown, zeros included, then any other the store reports."""
    shown = {key: int(counts.get(key, 0)) for key in keys}
    shown.update({k: int(v) for k, v in counts.items() if k not in shown})
    return shown
