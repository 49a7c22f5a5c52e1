"""Prometheus metrics. One registry per service instance; labels never carry secrets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ingested = Counter(
            "gsd_events_ingested",
            "Events accepted and stored",
            ["destination", "type"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "gsd_events_duplicate",
            "Events dropped as duplicate messageIds",
            ["destination"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "gsd_events_rejected", "Events refused at ingest (400)", ["destination"], registry=self.registry
        )
        self.ignored = Counter(
            "gsd_events_ignored",
            "Events of types Gainsight does not take (page, screen, alias, ...), not stored",
            ["destination", "type"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "gsd_events_finished",
            "Events finished by the workers, by final outcome",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.attempts = Counter(
            "gsd_delivery_attempts",
            "Delivery attempts, by outcome",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.calls = Counter(
            "gsd_gainsight_calls",
            "Calls made to Gainsight, by destination, step and HTTP status",
            ["destination", "step", "status"],
            registry=self.registry,
        )
        self.calls_saved = Counter(
            "gsd_calls_saved",
            "Gainsight calls the reference would have made and this service did not, by reason "
            "(coalesced, unchanged, company_batched, gsid_known)",
            ["destination", "reason"],
            registry=self.registry,
        )
        self.budget_waits = Counter(
            "gsd_budget_deferrals",
            "Times an event waited for the rate budget",
            ["tenant"],
            registry=self.registry,
        )
        self.queue = Gauge(
            "gsd_queue_events", "Events in the store, by state", ["state"], registry=self.registry
        )
        self.delivery_seconds = Histogram(
            "gsd_delivery_seconds",
            "From receipt to delivery",
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800, 3600, 86400),
            registry=self.registry,
        )
