"""Prometheus metrics. One registry per service instance; labels never carry secrets, and name
destinations by id, never by their Gainsight domain (a tenant's name is not for every scraper)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from destination.delivery.store import Store
from destination.status import degraded_destinations


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
            "gsd_events_rejected",
            "Items of an ingest request that are not events (listed in the answer's `rejected`), not stored",
            ["destination"],
            registry=self.registry,
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
            ["destination"],
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
        self.usage_unattributed = Counter(
            "gsd_usage_unattributed",
            "Counted track events with no company (DESIGN §3.7): counted apart, finished as filtered",
            ["destination"],
            registry=self.registry,
        )
        self.usage_rows_written = Counter(
            "gsd_usage_rows_written",
            "Usage count rows written to Gainsight by the flusher",
            ["destination"],
            registry=self.registry,
        )
        self.degraded = Gauge(
            "gsd_destination_degraded",
            "1 when every recent attempt for the destination failed (see /status)",
            ["destination"],
            registry=self.registry,
        )
        # More gauges read from the store at each scrape (the capacity forecast's, app.py).
        self.refreshers: list[Callable[[], Awaitable[None]]] = []

    def saved(self, destination: str, reason: str, calls: int) -> None:
        """Count calls saved (gsd_calls_saved_total); the executor reports them."""
        if calls > 0:
            self.calls_saved.labels(destination, reason).inc(calls)


async def scrape(metrics: Metrics, store: Store, destination_ids: Sequence[str] = ()) -> bytes:
    """The exposition text, the queue and degraded gauges refreshed from the store first."""
    for state, count in (await store.counts()).items():
        metrics.queue.labels(state).set(count)
    for destination_id, degraded in (await degraded_destinations(store, list(destination_ids))).items():
        metrics.degraded.labels(destination_id).set(int(degraded))
    for refresh in metrics.refreshers:
        await refresh()
    return bytes(generate_latest(metrics.registry))


async def serve_metrics(
    metrics: Metrics, store: Store, host: str, port: int, destination_ids: Sequence[str] = ()
) -> asyncio.Server:
    """/metrics on a listen address of its own (GSD_METRICS_HOST/PORT), so that the service's
    public address never shows it. A minimal HTTP/1.0 responder: GET /metrics, else 404."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = [*head.split(b" ", 2), b"", b""]
            if method == b"GET" and path.split(b"?", 1)[0] == b"/metrics":
                status, body, kind = (
                    b"200 OK",
                    await scrape(metrics, store, destination_ids),
                    CONTENT_TYPE_LATEST.encode(),
                )
            else:
                status, body, kind = b"404 Not Found", b"not found\n", b"text/plain"
            writer.write(
                b"HTTP/1.0 "
                + status
                + b"\r\nContent-Type: "
                + kind
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, limit=16 * 1024)
