"""The usage flusher (DESIGN §3.7): every GSD_USAGE_FLUSH_SECONDS, and soon after a UTC day closes,
each destination's rows whose count changed since their last write go to Gainsight (usage_writes.py).

A flush holds the destination's `usage` hold for its length (on PostgreSQL an advisory lock every
replica waits for), so two replicas never write one destination's rows at once: the second reads
the rows after the first has recorded what it wrote, and finds nothing (or only what changed since)
to write. A crash mid-flush loses nothing: counts are in the store, written counts are recorded
only once Gainsight has answered, and the next flush writes what is still due (absolute counts,
so writing a row twice is harmless). A row Gainsight refuses becomes a dead letter of its own
(usage_row_events.py) and is held out of later flushes until that dead letter is replayed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from destination.config import Destination
from destination.delivery.store import Store
from destination.delivery.usage_store import DAY_SECONDS
from destination.gainsight.client import Credentials
from destination.gainsight.executor import Executor
from destination.gainsight.jobs import Batch
from destination.gainsight.usage import usage_target
from destination.gainsight.usage_row_events import row_event
from destination.gainsight.usage_rows import UsageTarget
from destination.gainsight.usage_writes import UsageWriter, Written
from destination.metrics import Metrics

log = logging.getLogger(__name__)

FLUSH_ROWS = 5000  # rows read from the store per round of a flush
DAY_CLOSE_DELAY_SECONDS = 60.0  # a closed day's rows are flushed this long after UTC midnight


@dataclass(frozen=True, slots=True)
class FlushReport:
    destination: str
    rows: int = 0  # rows written
    calls: int = 0
    refused: int = 0  # rows dead-lettered
    stopped: str | None = None  # why the flush ended early (budget spent, Gainsight failing)
    retry_at: float | None = None  # then flush again (stopped early), not a whole interval later


RETRY_STOPPED_FLUSH_SECONDS = 60.0  # a flush Gainsight stopped (5xx, timeouts) is tried again then


def next_flush_at(last: float, interval: float) -> float:
    """The next flush: `interval` after the last, or just after the next UTC midnight if sooner."""
    midnight = (math.floor(last / DAY_SECONDS) + 1) * DAY_SECONDS
    return min(last + interval, midnight + DAY_CLOSE_DELAY_SECONDS)


class UsageFlusher:
    def __init__(
        self,
        writer: UsageWriter,
        store: Store,
        destinations: Mapping[str, Destination],
        targets: Mapping[str, UsageTarget],
        *,
        clock: Callable[[], float],
        rows_written: Callable[[str, int], None] = lambda destination, rows: None,
    ) -> None:
        """`targets`: the usage object of each destination that counts usage."""
        self._writer = writer
        self._store = store
        self._destinations = destinations
        self._targets = targets
        self._clock = clock
        self._rows_written = rows_written

    async def flush(self, destination_id: str) -> FlushReport:
        """Write the destination's due rows now."""
        destination = self._destinations[destination_id]
        target = self._targets[destination_id]
        credentials = Credentials.of(destination_id, destination.config)
        batch = Batch(destination.config.domain or "", credentials, skip_unchanged=False, versioned=False)
        total = Written()
        async with self._store.hold(destination_id, "usage", [destination_id]):
            while total.stopped is None:
                rows = await self._store.usage_due(destination_id, FLUSH_ROWS)
                if not rows:
                    break
                written = await self._writer.write(batch, target, rows)
                await self._refused(destination_id, written)
                total.rows, total.calls = total.rows + written.rows, total.calls + written.calls
                total.refused += written.refused
                total.stopped = written.stopped
                if written.over_budget is not None:
                    retry_at = written.over_budget.retry_at
                    return self._report(destination_id, total, "the rate budget is spent", retry_at)
                if len(rows) < FLUSH_ROWS:
                    break
        if total.stopped is None:
            return self._report(destination_id, total, None, None)
        why = total.stopped.error.message if total.stopped.error else total.stopped.outcome
        return self._report(destination_id, total, why, self._clock() + RETRY_STOPPED_FLUSH_SECONDS)

    def _report(
        self, destination_id: str, total: Written, stopped: str | None, retry_at: float | None
    ) -> FlushReport:
        self._rows_written(destination_id, total.rows)
        return FlushReport(destination_id, total.rows, total.calls, len(total.refused), stopped, retry_at)

    async def _refused(self, destination_id: str, written: Written) -> None:
        """Each refused row: a dead letter of its own, enqueued before the row is held back."""
        for row, call in written.refused:
            await self._store.enqueue([row_event(destination_id, row, call.answer, self._clock())])
            await self._store.usage_held(destination_id, [row.key], True)
            log.warning("usage row %s refused by Gainsight: %s", row.key, call.answer.error_desc)

    async def flush_all(self) -> list[FlushReport]:
        reports = []
        for destination_id in self._targets:
            try:
                reports.append(await self.flush(destination_id))
            except Exception:
                log.exception("flushing the usage counts of %s failed; will try again", destination_id)
        return reports

    async def run_forever(self, interval: float) -> None:
        """Flush every `interval` seconds and just after each UTC midnight, until cancelled."""
        last, retry_at = self._clock(), float("inf")
        while True:
            due = min(next_flush_at(last, interval), retry_at)
            await asyncio.sleep(max(0.0, due - self._clock()))
            last = self._clock()
            reports = await self.flush_all()
            # A flush stopped by a spent budget (a backlog spends each minute's first seconds) or
            # by Gainsight's failure goes on as soon as it can, not an interval later.
            retry_at = min((r.retry_at for r in reports if r.retry_at is not None), default=float("inf"))
            for report in reports:
                if report.rows or report.refused or report.stopped:
                    log.info(
                        "usage flush of %s: %d rows in %d calls, %d refused%s",
                        report.destination,
                        report.rows,
                        report.calls,
                        report.refused,
                        f"; stopped: {report.stopped}" if report.stopped else "",
                    )


def usage_flusher(
    executor: Executor, store: Store, destinations: Mapping[str, Destination], metrics: Metrics
) -> UsageFlusher:
    """The service's flusher: through the executor's client (its call slots, the rate governor)."""
    targets = {
        d.id: usage_target(d.config.usage) for d in destinations.values() if d.config.usage is not None
    }
    return UsageFlusher(
        executor.usage_writer,
        store,
        destinations,
        targets,
        clock=time.time,
        rows_written=lambda destination, rows: metrics.usage_rows_written.labels(destination).inc(rows),
    )
