"""What each event does in Gainsight, step by step: the one executor of plans (DESIGN §3, §5, §6).

The delivery workers, the RudderStack processor/router routes and the dry run all go through here.

track — one call, `event publish`, in its place in the person's order; or, for the events
`config.timeline` allow-lists, a `timeline activity` on the person's company (timeline_writer.py),
also in its place.

identify / group — the store hands the worker a person's *run*: their consecutive identify and
group events up to (not past) their next track (a person is a userId, else an anonymousId:
events.ordering_key). Their plans are executed together:

  1. company (group events only; company_writes.py), each company's call chosen from its state:

       Gsid remembered in the store, fields as last delivered → no call                 (unchanged)
       Gsid remembered, fields changed                        → company update          (gsid_known)
       Gsid not known                                         → company search
           the search answers a record → company update (PUT ?keys=Name); the Gsid is the search's
           it answers none             → company insert; the Gsid comes from the insert's answer

     Every group event of the batch shares these calls (company_batched): one `IN` search for the
     unknown names, one insert and one update of up to 50 records each, each company's fields merged
     in event order. Learnt Gsids and the delivered fields are remembered in the store. Names are
     matched as Gainsight matches them in `EQ`/`IN` and `keys=Name`: ignoring case (`company_key`;
     the likelier rule, reference §7 [U], and the simulator's default), so "Acme" and "ACME" are
     one company; the Name written is the last one received, as sending the events one by one
     leaves it (the update keyed by Name rewrites it). A field (Name included) that an event
     received later already wrote is never overwritten by an earlier one claimed after it
     (another person's), so each company ends with the last value received.

  2. person (person_runs.py): the run's events become one `person upsert` (coalesced): fields
     merged in event order (last write wins; a field an event leaves out keeps its earlier value)
     and `companies` holding every Gsid of step 1. It is skipped when Gainsight already holds all
     of it (unchanged).

Failures stay with their event. A call refused with a 4xx that carried several events is redone
event by event, so only the event that causes it fails; 429, 5xx and timeouts fail every event
that rode on the call (the worker retries them). An event that cannot go yet, because an earlier
event of its person failed or the rate budget is spent, is `deferred`: put back untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace

from destination.delivery.store import Store
from destination.errors import GainsightError, OverBudget
from destination.gainsight import plan as p
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.company_writes import CompanyWriter
from destination.gainsight.delivery_plans import TRACK_PLANS
from destination.gainsight.endpoints import UNKNOWN_COMPANY_CODE
from destination.gainsight.jobs import Batch, Fate, Job, Progress, Saved, TrackSink
from destination.gainsight.person_runs import PersonRunner
from destination.gainsight.publisher import Publisher
from destination.gainsight.timeline import ActivityPlan
from destination.gainsight.timeline_writer import ActivityWriter
from destination.gainsight.track_company import CompanyFinder
from destination.gainsight.usage import CountPlan
from destination.gainsight.usage_counter import UsageCounter
from destination.gainsight.usage_writes import UsageWriter


class Executor:
    def __init__(
        self,
        client: GainsightClient,
        memory: Store,
        *,
        unchanged_ttl_seconds: float,
        saved: Saved | None = None,
        clock: Callable[[], float],
        unattributed: Callable[[str], None] = lambda destination: None,
    ) -> None:
        """`unattributed`: counts a destination's counted event that has no company (a metric)."""
        count = saved or (lambda destination, reason, n: None)
        self._ttl = unchanged_ttl_seconds
        self._clock = clock
        self._companies = CompanyWriter(client, memory, ttl=self._ttl, saved=count, clock=clock)
        finder = CompanyFinder(client, memory, ttl=self._ttl, saved=count, clock=clock)
        publisher = Publisher(client, memory, ttl=self._ttl, saved=count, clock=clock)
        sinks: dict[type, TrackSink] = {
            p.TrackPlan: publisher,
            ActivityPlan: ActivityWriter(client, finder, publisher),
        }
        # Usage counts (DESIGN §3.7): the flusher writes rows through this same client.
        self.usage_writer = UsageWriter(client, memory, clock)
        sinks[CountPlan] = UsageCounter(
            client,
            memory,
            ttl=self._ttl,
            saved=count,
            clock=clock,
            writer=self.usage_writer,
            finder=finder,
            publisher=publisher,
            unattributed=unattributed,
        )
        self._people = PersonRunner(client, memory, ttl=self._ttl, saved=count, clock=clock, sinks=sinks)

    async def run(self, runs: Sequence[Sequence[Job]], credentials: Credentials) -> dict[int, Fate]:
        """Execute claimed runs of one destination: each run is one person's events in order
        (their head and following due events, tracks included). Returns every job's fate."""
        domain = next((job.plan.domain for run in runs for job in run), "")
        batch = Batch(domain, credentials, skip_unchanged=self._ttl > 0, versioned=True)
        groups = [job for run in runs for job in _companies_due(batch, run)]
        gsids = await self._companies.write_companies(batch, sorted(groups, key=lambda job: job.id))
        await asyncio.gather(*(self._people.run_person(batch, run, gsids) for run in runs))
        for job in (job for run in runs for job in run):
            fate = batch.fates.setdefault(job.id, Fate("deferred"))
            vanished = fate.error is not None and fate.error.error_code == UNKNOWN_COMPANY_CODE
            if (
                fate.outcome not in ("delivered", "unchanged", "counted", "filtered", "aborted", "rejected")
                and job.id in gsids
                and not vanished
            ):
                # The company is written: a later try only redoes the person.
                batch.fates[job.id] = replace(fate, progress=Progress(gsids[job.id]))
        return batch.fates

    async def write_companies(
        self, plans: Sequence[p.GroupPlan], credentials: Credentials
    ) -> list[str | GainsightError]:
        """Each group plan's Company written (shared calls, as for the workers) and its Gsid, or
        the error that stopped it. For the transformer routes, which return the association."""
        if not plans:
            return []
        batch = Batch(plans[0].domain, credentials, skip_unchanged=False, versioned=False)
        jobs = [Job(i, plan) for i, plan in enumerate(plans)]
        gsids = await self._companies.write_companies(batch, jobs)
        results: list[str | GainsightError] = []
        for job in jobs:
            fate = batch.fates.get(job.id)
            if job.id in gsids:
                results.append(gsids[job.id])
            elif fate is not None and fate.error is not None:
                results.append(fate.error)
            else:
                retry_at = fate.retry_at if fate is not None and fate.retry_at else self._clock()
                results.append(OverBudget(retry_at))
        return results


def _companies_due(batch: Batch, run: Sequence[Job]) -> list[Job]:
    """The run's group events whose company is written now, with every batch's (step 1): those
    before the person's first track. A later one waits (deferred, and the person's events after
    it), so that no company write of the person goes out before an earlier track of theirs; it
    heads the person's next claim."""
    due: list[Job] = []
    after_track = False
    for job in run:
        after_track = after_track or isinstance(job.plan, TRACK_PLANS)
        if isinstance(job.plan, p.GroupPlan):
            if after_track and job.progress.company_gsid is None:
                batch.fates[job.id] = Fate("deferred")
            else:
                due.append(job)
    return due
