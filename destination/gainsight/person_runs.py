"""Step 2: a person's run, in order (DESIGN §5, §6).

A run's consecutive identify/group events become one `person upsert` (coalesced): fields merged in
event order (last write wins; a field an event leaves out keeps its earlier value) and `companies`
holding every Gsid of step 1 (company_writes.py). It is skipped when Gainsight already holds all
of it (unchanged). A track is its own call, in its place. After a failure that must be retried,
the rest of the person's events wait (deferred).

A person is a userId, else an anonymousId (events.ordering_key). The upsert's key is the Email, so
a merge never spans two: where the email a run writes changes (one userId, another address), the
run goes on as a second upsert, sent once the first is delivered. An identify without an email (or
a group without the person's) is rejected by the planner before anything is sent: it writes
nothing, so it neither ends nor splits a stretch. Two userIds can write one email: the email is
held while it is written (`DeliveryMemory.hold`), so their upserts never overlap, in this process
or, on PostgreSQL, in any replica.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from destination.delivery.store import DeliveryMemory, StoreUnavailableError
from destination.errors import GainsightError, OverBudget
from destination.gainsight import plan as p
from destination.gainsight.client import Call, GainsightClient
from destination.gainsight.delivery_plans import TRACK_PLANS
from destination.gainsight.endpoints import UNKNOWN_COMPANY_CODE
from destination.gainsight.jobs import (
    Batch,
    Fate,
    Job,
    Saved,
    Stage,
    TrackSink,
    changes_nothing,
    failed,
)
from destination.gainsight.outcomes import classify

log = logging.getLogger(__name__)


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
    def __init__(
        self,
        client: GainsightClient,
        memory: DeliveryMemory,
        *,
        ttl: float,
        saved: Saved,
        clock: Callable[[], float],
        sinks: Mapping[type, TrackSink],
    ) -> None:
        super().__init__(client, memory, ttl=ttl, saved=saved, clock=clock)
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
            failed = batch.fates[job.id]
            if failed.outcome not in ("aborted", "rejected"):
                state.blocked = await self._flush(batch, state) or failed
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
        call = await self._client.send(p.person_upsert(batch.scope, person), batch.credentials)
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
        links = {job.person: gsids[job.id] for job in segment if job.person and job.id in gsids}
        if links:
            await self._memory.remember_last_companies(batch.destination, links, self._clock())

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
