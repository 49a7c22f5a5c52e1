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

  2. person (PersonRunner, below): a run's consecutive identify/group events become one `person
     upsert` (coalesced): fields merged in event order (last write wins; a field an event leaves
     out keeps its earlier value) and `companies` holding every Gsid of step 1. It is skipped when
     Gainsight already holds all of it (unchanged). A track is its own call, in its place, through
     the sink of its plan (publisher.py, timeline_writer.py, usage_counter.py).

     The upsert's key is the Email, so a merge never spans two: where the email a run writes
     changes (one userId, another address), the run goes on as a second upsert, sent once the first
     is delivered. An identify without an email (or a group without the person's) is rejected by
     the planner: it writes nothing, so it neither ends nor splits a stretch. Two userIds can write
     one email: the email is held while it is written (`DeliveryMemory.hold`), so their upserts
     never overlap, in this process or, on PostgreSQL, in any replica.

Failures stay with their event. A call refused with a 4xx that carried several events is redone
event by event, so only the event that causes it fails; 429, 5xx and timeouts fail every event
that rode on the call (the worker retries them). An event that cannot go yet, because an earlier
event of its person failed or the rate budget is spent, is `deferred`: put back untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from destination.delivery.store import LastCompany, Store, StoreUnavailableError
from destination.errors import GainsightError, OverBudget
from destination.gainsight import plan as p
from destination.gainsight.client import Call, Credentials, GainsightClient
from destination.gainsight.company_writes import CompanyWriter
from destination.gainsight.endpoints import UNKNOWN_COMPANY_CODE
from destination.gainsight.jobs import (
    Batch,
    Fate,
    Job,
    Progress,
    Saved,
    Stage,
    TrackSink,
    changes_nothing,
    failed,
)
from destination.gainsight.outcomes import classify
from destination.gainsight.plan import TRACK_PLANS
from destination.gainsight.publisher import Publisher
from destination.gainsight.requests import person_upsert
from destination.gainsight.timeline import ActivityPlan
from destination.gainsight.timeline_writer import ActivityWriter
from destination.gainsight.track_company import CompanyFinder
from destination.gainsight.track_plan import TrackPlan
from destination.gainsight.usage import CountPlan
from destination.gainsight.usage_counter import UsageCounter
from destination.gainsight.usage_writes import UsageWriter

log = logging.getLogger(__name__)


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
        self._finder = finder = CompanyFinder(client, memory, ttl=self._ttl, saved=count, clock=clock)
        publisher = Publisher(client, memory, ttl=self._ttl, saved=count, clock=clock)
        sinks: dict[type, TrackSink] = {
            TrackPlan: publisher,
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
        await self._finder.read_last_companies(batch, [job for run in runs for job in run])
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


def merged_person(plans: Sequence[p.IdentifyPlan | p.GroupPlan], gsids: Sequence[str]) -> dict[str, Any]:
    """One Person upsert for a run segment: fields merged in event order, every company linked."""
    person: dict[str, Any] = {}
    for plan in plans:
        if isinstance(plan, p.IdentifyPlan):
            person.update(plan.person)
        else:
            person["Email"] = plan.email
    if gsids:
        person["companies"] = [{"Company_ID": gsid} for gsid in dict.fromkeys(gsids)]
    return person


def person_key(email: Any) -> str:
    """People are matched by Email regardless of case (as Gainsight and the simulator do): the
    key of a person's delivered-state memory and of its hold while it is written."""
    return str(email).casefold()


@dataclass(slots=True)
class _RunState:
    gsids: dict[int, str]  # job -> its company's Gsid
    segment: list[Job] = field(default_factory=list)  # events waiting for one person upsert
    blocked: Fate | None = None  # the failure the rest of the run waits behind


class PersonRunner(Stage):
    def __init__(self, *args: Any, sinks: Mapping[type, TrackSink], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sinks = sinks  # track plan type -> where it goes

    async def run_person(self, batch: Batch, run: Sequence[Job], gsids: dict[int, str]) -> None:
        """A person's run in order: segments of identify/group events as one upsert each, a
        track as its own call; after a failure that must be retried, the rest waits."""
        state = _RunState(gsids)
        try:
            for job in run:
                await self._place(batch, job, state)
            if state.blocked is None:
                await self._flush(batch, state)
        except OverBudget as exc:
            for job in run:
                batch.fates.setdefault(job.id, Fate("deferred", retry_at=exc.retry_at))

    async def _place(self, batch: Batch, job: Job, state: _RunState) -> None:
        if state.blocked is None and isinstance(job.plan, TRACK_PLANS):
            state.blocked = await self._flush(batch, state) or await self._track(batch, job)
            return
        if state.blocked is None and job.id in batch.fates:  # its company failed
            fate = batch.fates[job.id]
            if fate.outcome not in ("aborted", "rejected"):
                state.blocked = await self._flush(batch, state) or fate
            return
        if state.blocked is None and state.segment and _another_person(state.segment[0], job):
            state.blocked = await self._flush(batch, state)
        if state.blocked is not None:
            batch.fates.setdefault(job.id, Fate("deferred", retry_at=state.blocked.retry_at))
            return
        state.segment.append(job)

    async def _flush(self, batch: Batch, state: _RunState) -> Fate | None:
        taken, state.segment = state.segment, []
        return await self._upsert(batch, taken, state.gsids) if taken else None

    async def _track(self, batch: Batch, job: Job) -> Fate | None:
        try:
            fate = await self._sinks[type(job.plan)].deliver(batch, job)
        except (OverBudget, StoreUnavailableError):
            raise  # nothing sent / the store cannot commit: the whole batch waits (worker.py)
        except Exception as exc:
            # A sink's bug or a store refusing one event's values fails that event alone (retried,
            # then a dead letter), not every event of the batch.
            log.exception("delivering event %d through its %s sink failed", job.id, type(job.plan).__name__)
            error = GainsightError(
                f"internal error while delivering: {type(exc).__name__}", outcome="retryable"
            )
            fate = Fate("retryable", error=error, progress=job.progress)
        batch.fates[job.id] = fate
        # A sink defers a track it part-delivered (a Timeline activity written, its publish over
        # budget): the person's later events wait behind it too.
        return fate if fate.outcome in ("throttled", "retryable", "deferred") else None

    async def _upsert(self, batch: Batch, segment: list[Job], gsids: dict[int, str]) -> Fate | None:
        """One Person upsert for a segment (consecutive events of one person that write one email);
        the failure that blocks the person's later events, if any."""
        plans = [job.plan for job in segment if isinstance(job.plan, p.IdentifyPlan | p.GroupPlan)]
        person = merged_person(plans, [gsids[job.id] for job in segment if job.id in gsids])
        # Two userIds may write one email: one writer per email at a time, in this process and (on
        # PostgreSQL) in every replica, from the memory's check to its update. Held within a call
        # slot, so there are never more holders than calls in flight.
        async with (
            self._client.slot(),
            self._memory.hold(batch.scope, "person", [person_key(person["Email"])]),
        ):
            call = await self._write_person(batch, segment, person)
        if call is None or classify(call.answer) == "delivered":
            await self._remember_association(batch, segment, gsids)
            return None
        if classify(call.answer) == "aborted" and len(segment) > 1:
            return await self._split(batch, segment, gsids)
        fate = await self._refused(batch, segment, call)
        for job in segment:
            batch.fates[job.id] = fate
        return fate if fate.outcome in ("throttled", "retryable") else None

    async def _write_person(self, batch: Batch, segment: list[Job], person: dict[str, Any]) -> Call | None:
        """The upsert, unless Gainsight holds all of it already (None: the segment is unchanged);
        once delivered, the segment's fates and the memory of what Gainsight now holds."""
        key = person_key(person["Email"])
        delivered: dict[str, Any] | None = None
        if batch.skip_unchanged:
            since = self._clock() - self._ttl
            delivered = (await self._memory.delivered_states(batch.scope, "person", [key], since)).get(key)
            if changes_nothing(delivered, _flat(person)):
                for job in segment:
                    batch.fates[job.id] = _done(batch, job, None)
                self._saved(batch.destination, "unchanged", len(segment))
                return None
        call = await self._client.send(person_upsert(batch.scope, person), batch.credentials)
        if classify(call.answer) == "delivered":
            for job in segment:
                batch.fates[job.id] = _done(batch, job, call)
            self._saved(batch.destination, "coalesced", len(segment) - 1)
            if batch.skip_unchanged:
                await self._remember_person(batch, key, delivered, person)
        return call

    async def _remember_association(self, batch: Batch, segment: list[Job], gsids: dict[int, str]) -> None:
        """The person's last company (their last group event here): where their later Timeline
        activities and usage counts go (DESIGN §3.6)."""
        links = {j.person: LastCompany(gsids[j.id], j.id) for j in segment if j.person and j.id in gsids}
        if links:
            await self._memory.remember_last_companies(batch.destination, links, self._clock())
            for person in links:  # read again at the person's next track: the store may have kept
                batch.last_companies.pop(person, None)  # a later event's (a lapsed lease writes late)

    async def _split(self, batch: Batch, segment: list[Job], gsids: dict[int, str]) -> Fate | None:
        """A refused merged upsert, redone event by event in order: only its cause fails."""
        for position, job in enumerate(segment):
            blocked = await self._upsert(batch, [job], gsids)
            if blocked is not None:
                for later in segment[position + 1 :]:
                    batch.fates[later.id] = Fate("deferred", retry_at=blocked.retry_at)
                return blocked
        return None

    async def _refused(self, batch: Batch, segment: list[Job], call: Call) -> Fate:
        fate = failed(self._client, call)
        if fate.error is not None and fate.error.error_code == UNKNOWN_COMPANY_CODE:
            # A Gsid no longer names a company (deleted in Gainsight): forget it; resolve afresh.
            names = [j.plan.company_key for j in segment if isinstance(j.plan, p.GroupPlan)]
            await self._memory.forget_gsids(batch.scope, names)
            await self._memory.forget_states(batch.scope, "company", names)
            error = GainsightError(
                f"{fate.error.message}; the company is resolved afresh on the next try",
                outcome="retryable",
                http_status=fate.error.http_status,
                error_code=fate.error.error_code,
                response=fate.error.response,
            )
            fate = Fate("retryable", call, error)
        return fate

    async def _remember_person(
        self, batch: Batch, key: str, delivered: dict[str, Any] | None, person: dict[str, Any]
    ) -> None:
        flat = _flat(person)
        linked = set((delivered or {}).get("companies", ())) | set(flat.get("companies", ()))
        state = {**(delivered or {}), **flat, "companies": sorted(linked)}
        await self._memory.remember_states(batch.scope, "person", {key: state}, self._clock())


def _done(batch: Batch, job: Job, person_call: Call | None) -> Fate:
    """Delivered through the call that carried the event last; unchanged if none did."""
    call = person_call or batch.company_calls.get(job.id)
    return Fate("delivered" if call is not None else "unchanged", call)


def _another_person(first: Job, job: Job) -> bool:
    """A run's events share an ordering key (a userId), yet may write other emails (or one cased
    otherwise): each stretch of one email is one upsert, sent after the stretch before it."""
    assert isinstance(first.plan, p.IdentifyPlan | p.GroupPlan)
    assert isinstance(job.plan, p.IdentifyPlan | p.GroupPlan)
    return person_key(first.plan.email) != person_key(job.plan.email)


def _flat(person: Mapping[str, Any]) -> dict[str, Any]:
    """A Person upsert body as delivered state: `companies` as a list of Gsids."""
    flat = {k: v for k, v in person.items() if k != "companies"}
    links = person.get("companies")
    if links:
        flat["companies"] = [link["Company_ID"] for link in links]
    return flat
