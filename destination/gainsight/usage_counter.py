"""The usage sink (DESIGN §3.7): a counted track event in its place in the person's order.

  1. its company: CompanyFinder (the person's last group association, else `context.groupId`
     through `companyIdentity`); a failed search fails the event as any call does;
  2. its count: +1 under (company, UTC day, event name) once per messageId, in one store
     transaction (usage_store.py), so a retry after a crash counts nothing twice; with no company,
     under the unattributed company: the event finishes `filtered` with that reason, and
     gsd_usage_unattributed_total counts it;
  3. with `usage.publish`, the Events Framework publish, as for any track (a retry publishes
     again; the count is not repeated).

It finishes `counted`. The flusher (usage_flush.py) writes the counts later. A refused row's own
event (usage_row_events.py) is written here instead: that row, now, alone.
"""

from __future__ import annotations

from collections.abc import Callable

from destination.delivery.store import Store
from destination.delivery.usage_store import DAY_SECONDS, UNATTRIBUTED, UsageKey, oldest_day_kept, utc_day
from destination.gainsight.client import Call, GainsightClient
from destination.gainsight.jobs import Batch, Fate, Job, Saved, Stage, failed
from destination.gainsight.publisher import Publisher
from destination.gainsight.track_company import CompanyFinder
from destination.gainsight.usage import CountPlan
from destination.gainsight.usage_writes import UsageWriter


class UsageCounter(Stage):
    def __init__(
        self,
        client: GainsightClient,
        memory: Store,
        *,
        ttl: float,
        saved: Saved,
        clock: Callable[[], float],
        writer: UsageWriter,
        finder: CompanyFinder,
        publisher: Publisher,
        unattributed: Callable[[str], None],
    ) -> None:
        super().__init__(client, memory, ttl=ttl, saved=saved, clock=clock)
        self._store = memory
        self._finder = finder
        self._publisher = publisher
        self._writer = writer
        self._unattributed = unattributed  # the destination's unattributed event, counted once

    async def deliver(self, batch: Batch, job: Job) -> Fate:
        plan = job.plan
        assert isinstance(plan, CountPlan)
        if plan.row is not None:
            return await self._write_row(batch, plan, plan.row)
        received_at = job.received_at or self._clock()
        # A day after the one it was received on is a sender's clock gone wrong: counted then.
        latest = utc_day(received_at + DAY_SECONDS)
        day = plan.day if plan.day is not None and plan.day <= latest else utc_day(received_at)
        if day < oldest_day_kept(self._clock()):
            return Fate(
                "filtered", reason=f"not counted: its day {day} is past the days usage counts are kept"
            )
        found = await self._finder.find(batch, job, plan.source)
        if found.failed is not None:
            return found.failed
        company = found.gsid or UNATTRIBUTED
        counted = await self._store.count_usage(
            batch.destination, plan.message_id, UsageKey(company, day, plan.metric), self._clock()
        )
        if counted and company == UNATTRIBUTED:
            self._unattributed(batch.destination)
        call: Call | None = None
        if plan.publish is not None:
            published = await self._publisher.publish(batch, plan.publish)
            if published.outcome != "delivered":
                return published
            call = published.call
        if company == UNATTRIBUTED:
            reason = "no company: the person has no group association"
            if plan.source.field is not None:
                reason += f" and no Company has {plan.source.field} = {plan.source.value}"
            return Fate("filtered", call, reason=f"{reason}; counted as unattributed")
        target = plan.target
        key = f"{target.company} = {company}, {target.date} = {day}, {target.metric} = {plan.metric}"
        return Fate("counted", call, note=f"counted in {target.object} under {key}")

    async def _write_row(self, batch: Batch, plan: CountPlan, key: UsageKey) -> Fate:
        """A refused row's retry: its count as the store holds it now, written alone."""
        rows = await self._store.usage_rows(batch.destination, [key])
        if not rows:
            return Fate("filtered", reason=f"usage row {key} is no longer in the store")
        written = await self._writer.write(batch, plan.target, rows)
        if written.refused:
            return failed(self._client, written.refused[0][1])
        if written.over_budget is not None:
            raise written.over_budget  # nothing more was sent: the event waits (executor.py)
        if written.stopped is not None:
            return written.stopped
        count = f"{plan.target.count} = {rows[0].count}"
        return Fate("delivered", written.last_call, note=f"usage row written: {count}")
