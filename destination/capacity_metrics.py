"""The capacity forecast as Prometheus gauges (DESIGN §6), refreshed at each scrape:
`gsd_backlog_clear_seconds{destination}` (+Inf while the backlog grows) and
`gsd_calls_needed_per_day{destination}`."""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge

from destination.capacity_facts import capacity, configs_of
from destination.config import Destination
from destination.delivery.store import Store
from destination.settings import Settings


class CapacityGauges:
    def __init__(
        self,
        registry: CollectorRegistry,
        store: Store,
        destinations: Mapping[str, Destination],
        settings: Settings,
    ) -> None:
        self._store, self._destinations, self._settings = store, destinations, settings
        self.clear_seconds = Gauge(
            "gsd_backlog_clear_seconds",
            "Seconds until the destination's backlog clears at today's traffic (+Inf: it grows)",
            ["destination"],
            registry=registry,
        )
        self.calls_needed = Gauge(
            "gsd_calls_needed_per_day",
            "Gainsight calls a day the destination's traffic of the last hour needs",
            ["destination"],
            registry=registry,
        )

    async def refresh(self) -> None:
        for answer in await capacity(self._store, configs_of(self._destinations), self._settings):
            clears = answer["backlogClearsInSeconds"]
            self.clear_seconds.labels(answer["destination"]).set(math.inf if clears is None else clears)
            self.calls_needed.labels(answer["destination"]).set(answer["callsNeededPerDay"])
