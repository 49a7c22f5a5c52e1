"""What each event does in Gainsight, step by step: the one executor of plans (DESIGN §3, §5, §6).

The delivery workers, the RudderStack processor/router routes and the dry run all go through here.

track — one call, `event publish`, in its place in the person's order.

identify / group — the store hands the worker a person's *run*: their consecutive identify and
group events up to (not past) their next track (a person is a userId, else an anonymousId:
events.ordering_key). Their plans are executed together:

  1. company (group events only), decided by `next_company_step` from what is known of the name:

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

  2. person: the run's events become one `person upsert` (coalesced): fields merged in event order
     (last write wins; a field an event leaves out keeps its earlier value) and `companies` holding
     every Gsid of step 1. It is skipped when Gainsight already holds all of it (unchanged). The
     upsert's key is the Email, so a merge never spans two: where the email a run writes changes
     (one userId, another address), the run goes on as a second upsert, sent once the first is
     delivered. An identify without an email (or a group without the person's) is rejected by the
     planner before anything is sent: it writes nothing, so it neither ends nor splits a stretch.
     Two userIds can write one email: the email is held while it is written (`Memory.hold`), so
     their upserts never overlap, in this process or, on PostgreSQL, in any replica.

Failures stay with their event. A call refused with a 4xx that carried several events is redone
event by event, so only the event that causes it fails; 429, 5xx and timeouts fail every event
that rode on the call (the worker retries them). An event that cannot go yet, because an earlier
event of its person failed or the rate budget is spent, is `deferred`: put back untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from destination.errors import GainsightError, OverBudget
from destination.gainsight import plan as p
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.companies import (
    gsid_by_name,
    gsids_written,
    is_no_match,
    matched_nothing,
)
from destination.gainsight.endpoints import MAX_RECORDS_PER_CALL, UNKNOWN_COMPANY_CODE
from destination.gainsight.outcomes import Answer, classify

# ---------------------------------------------------------------------------------------------
# The decisions (pure, table-tested in tests/unit/test_executor_steps.py)

CompanyStep = Literal["search", "insert", "update", "done"]


@dataclass(frozen=True, slots=True)
class CompanyProgress:
    """What is known, so far in this batch, about one company name."""

    gsid: str | None = None  # remembered, or learnt from the search or a write
    searched: bool = False
    found: bool = False  # the search answered a record
    unchanged: bool = False  # the fields to write are those last delivered
    written: bool = False


def next_company_step(company: CompanyProgress) -> CompanyStep:
    """The next call for a company; "done" once its Gsid is known and its fields are there."""
    if company.written or (company.gsid and company.unchanged):
        return "done"
    if company.gsid or company.found:
        return "update"
    if not company.searched:
        return "search"
    return "insert"


def holds(delivered: Mapping[str, Any] | None, record: Mapping[str, Any]) -> bool:
    """Whether writing `record` over `delivered` would change nothing (companies: a subset)."""
    if delivered is None:
        return False
    for key, value in record.items():
        if key == "companies":
            if not set(value) <= set(delivered.get("companies", ())):
                return False
        elif key not in delivered or delivered[key] != value:
            return False
    return True


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


def company_key(name: str) -> str:
    """Company names are matched ignoring case, as Gainsight's `EQ`/`IN` and `keys=Name` do: the
    key of a company within a batch and in the store's Gsid and delivered-state memory."""
    return name.casefold()


def person_key(email: Any) -> str:
    """People are matched by Email regardless of case (as Gainsight and the simulator do): the
    key of a person's delivered-state memory and of its hold while it is written."""
    return str(email).casefold()


def group_steps(plan: p.GroupPlan) -> list[tuple[p.Request, str]]:
    """Every request a group event may cause, with when it is sent (for the dry run)."""
    gsid = f"<Gsid of company {plan.company_name!r}>"
    return [
        (plan.search_request(), "unless the company's Gsid is known"),
        (plan.insert_request(), "when the search finds no company"),
        (plan.update_request(), "when the company exists (the Gsid is the search's)"),
        (plan.association_request(gsid), "merged with the person's run into one person upsert"),
    ]


# ---------------------------------------------------------------------------------------------
# What goes in and what comes out

SavedReason = Literal["coalesced", "unchanged", "company_batched", "gsid_known"]
Outcome = Literal["delivered", "unchanged", "throttled", "retryable", "aborted", "deferred"]


@dataclass(frozen=True, slots=True)
class Progress:
    """What an earlier try of an event achieved; the store keeps it between tries."""

    company_gsid: str | None = None  # a group's company is written and has this Gsid

    def as_dict(self) -> dict[str, Any] | None:
        return None if self.company_gsid is None else {"company_gsid": self.company_gsid}

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Progress:
        gsid = (stored or {}).get("company_gsid")
        return cls(gsid if isinstance(gsid, str) and gsid else None)


@dataclass(frozen=True, slots=True)
class Job:
    """One event to execute: its id (the store's), its plan, what earlier tries achieved."""

    id: int
    plan: p.Plan
    progress: Progress = Progress()


@dataclass(frozen=True, slots=True)
class Call:
    """One call made: its id (shared by every event that rode on it) and the request as sent."""

    id: str
    step: p.Step
    request: dict[str, Any]  # secrets masked
    answer: Answer


@dataclass(frozen=True, slots=True)
class Fate:
    """How one event ended this try."""

    outcome: Outcome
    call: Call | None = None  # the call that decided it
    error: GainsightError | None = None
    progress: Progress = Progress()
    retry_at: float | None = None  # deferred: not before (None: as soon as possible)


class Memory(Protocol):
    """What the executor remembers between batches (the store implements it)."""

    async def company_gsids(self, scope: str, names: Sequence[str]) -> dict[str, str]: ...
    async def remember_gsids(self, scope: str, gsids: Mapping[str, str], now: float) -> None: ...
    async def forget_gsids(self, scope: str, names: Sequence[str]) -> None: ...
    async def delivered_states(
        self, scope: str, kind: Literal["person", "company"], keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]: ...
    async def remember_states(
        self,
        scope: str,
        kind: Literal["person", "company"],
        states: Mapping[str, Mapping[str, Any]],
        now: float,
    ) -> None: ...
    async def forget_states(
        self, scope: str, kind: Literal["person", "company"], keys: Sequence[str]
    ) -> None: ...
    def hold(
        self, scope: str, kind: Literal["company", "person"], keys: Sequence[str]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the keys (casefolded) against every other holder sharing the store."""
        ...


Saved = Callable[[str, SavedReason, int], None]


@dataclass(slots=True)
class _Company:
    """One company name during a batch."""

    name: str  # as the first event of the batch spells it (searched with it)
    record: dict[str, Any]  # merged in event order, so its Name is the last event's spelling
    jobs: list[int]
    progress: CompanyProgress = CompanyProgress()
    call: Call | None = None  # the last call that wrote it
    failure: Fate | None = None
    shared_failure: bool = False  # the failed call carried other events too
    versions: dict[str, int] = field(default_factory=dict)  # field -> id of the event it is from
    delivered: dict[str, Any] | None = None  # what the store remembers delivered (see _resolve)

    @property
    def key(self) -> str:
        return company_key(self.name)


@dataclass(slots=True)
class _RunState:
    gsids: dict[int, str]  # job -> its company's Gsid
    segment: list[Job] = field(default_factory=list)  # events waiting for one person upsert
    blocked: Fate | None = None  # the failure the rest of the run waits behind


@dataclass(slots=True)
class _Batch:
    scope: str
    credentials: Credentials
    skip_unchanged: bool
    versioned: bool  # job ids are the store's event ids, so they order events as received
    fates: dict[int, Fate] = field(default_factory=dict)
    company_calls: dict[int, Call] = field(default_factory=dict)  # job -> its company's write


class Executor:
    def __init__(
        self,
        client: GainsightClient,
        memory: Memory,
        *,
        unchanged_ttl_seconds: float,
        saved: Saved | None = None,
        clock: Callable[[], float],
        concurrency: int = 8,
    ) -> None:
        self._client = client
        self._memory = memory
        self._ttl = unchanged_ttl_seconds
        self._saved = saved or (lambda destination, reason, n: None)
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)

    # ---- entry points ----

    async def run(self, runs: Sequence[Sequence[Job]], credentials: Credentials) -> dict[int, Fate]:
        """Execute claimed runs of one destination: each run is one person's events in order
        (identify/group events, or one track). Returns every job's fate."""
        domain = next((job.plan.domain for run in runs for job in run), "")
        batch = _Batch(domain, credentials, skip_unchanged=self._ttl > 0, versioned=True)
        groups = [job for run in runs for job in run if isinstance(job.plan, p.GroupPlan)]
        gsids = await self._write_companies(batch, sorted(groups, key=lambda job: job.id))
        await asyncio.gather(*(self._run_person(batch, run, gsids) for run in runs))
        for job in (job for run in runs for job in run):
            fate = batch.fates.setdefault(job.id, Fate("deferred"))
            vanished = fate.error is not None and fate.error.error_code == UNKNOWN_COMPANY_CODE
            if fate.outcome not in ("delivered", "unchanged", "aborted") and job.id in gsids and not vanished:
                # The company is written: a later try only redoes the person.
                batch.fates[job.id] = replace(fate, progress=Progress(gsids[job.id]))
        return batch.fates

    async def company_gsids(
        self, plans: Sequence[p.GroupPlan], credentials: Credentials
    ) -> list[str | GainsightError]:
        """Each group plan's Company written (shared calls, as for the workers) and its Gsid, or
        the error that stopped it. For the transformer routes, which return the association."""
        if not plans:
            return []
        batch = _Batch(plans[0].domain, credentials, skip_unchanged=False, versioned=False)
        jobs = [Job(i, plan) for i, plan in enumerate(plans)]
        gsids = await self._write_companies(batch, jobs)
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

    # ---- one call ----

    async def _call(self, batch: _Batch, request: p.Request) -> Call:
        """Send one request; OverBudget propagates (nothing was sent)."""
        async with self._slots:
            return await self._send(batch, request)

    async def _send(self, batch: _Batch, request: p.Request) -> Call:
        """`_call` for a caller that holds a call slot already."""
        answer, sent = await self._client.send_described(request, batch.credentials)
        return Call(uuid.uuid4().hex[:16], request.step, sent, answer)

    def _failed(self, call: Call) -> Fate:
        error = self._client.failure(call.answer, call.step)
        return Fate(error.outcome, call, error)

    # ---- step 1: companies ----

    async def _write_companies(self, batch: _Batch, groups: Sequence[Job]) -> dict[int, str]:
        """Write every company the group jobs name; the Gsid per job that got one. Jobs whose
        company failed get their fate in `batch.fates`."""
        gsids = {j.id: j.progress.company_gsid for j in groups if j.progress.company_gsid is not None}
        companies: dict[str, _Company] = {}
        for job in groups:
            assert isinstance(job.plan, p.GroupPlan)
            if job.id not in gsids:  # else written by an earlier try
                name = job.plan.company_name
                company = companies.setdefault(company_key(name), _Company(name, {}, []))
                company.record.update(job.plan.company)
                company.versions.update(dict.fromkeys(job.plan.company, job.id))
                company.jobs.append(job.id)
        if companies:
            # One writer per company name at a time (in this process and, on PostgreSQL, across
            # replicas): a second batch searches only after the first has inserted.
            async with self._memory.hold(batch.scope, "company", sorted(companies)):
                try:
                    await self._resolve(batch, companies, split=True, plans=groups)
                except OverBudget as exc:
                    for company in companies.values():
                        if next_company_step(company.progress) != "done" and company.failure is None:
                            company.failure = Fate("deferred", retry_at=exc.retry_at)
            self._hand_out(batch, companies, gsids)
        return gsids

    @staticmethod
    def _hand_out(batch: _Batch, companies: dict[str, _Company], gsids: dict[int, str]) -> None:
        """Each company's result to the jobs that named it (unless decided event by event)."""
        for company in companies.values():
            for job_id in (j for j in company.jobs if j not in batch.fates):
                if company.failure is not None:
                    batch.fates[job_id] = company.failure
                elif company.progress.gsid:
                    gsids[job_id] = company.progress.gsid
                    if company.call is not None:
                        batch.company_calls[job_id] = company.call
                else:
                    batch.fates[job_id] = Fate("deferred")

    async def _resolve(
        self, batch: _Batch, companies: dict[str, _Company], *, split: bool, plans: Sequence[Job]
    ) -> None:
        names = list(companies)  # their keys
        known = await self._memory.company_gsids(batch.scope, names)
        remembered: dict[str, dict[str, Any]] = {}
        if batch.versioned and known:
            remembered = await self._memory.delivered_states(batch.scope, "company", list(known), 0.0)
        for name, company in companies.items():
            company.delivered = remembered.get(name)
            company.progress = CompanyProgress(
                gsid=known.get(name), unchanged=self._unchanged(batch, company)
            )
        destination = batch.credentials.destination
        searched = sum(len(c.jobs) for c in companies.values() if c.progress.gsid)
        self._saved(destination, "gsid_known", searched)
        for _ in range(4):  # search, insert, update; once more for a company deleted meanwhile
            pending = {
                step: [
                    c
                    for c in companies.values()
                    if c.failure is None and next_company_step(c.progress) == step
                ]
                for step in ("search", "insert", "update")
            }
            if not any(pending.values()):
                break
            await self._search(batch, pending["search"])
            for step in ("insert", "update"):
                todo = [
                    c
                    for c in companies.values()
                    if c.failure is None and next_company_step(c.progress) == step
                ]
                await self._write(batch, step, todo)
        for company in companies.values():
            done = company.failure is None and next_company_step(company.progress) == "done"
            if done and company.call is None:
                self._saved(destination, "unchanged", len(company.jobs))
        refused = [
            c
            for c in companies.values()
            if c.failure is not None and c.failure.outcome == "aborted" and c.shared_failure
        ]
        if split and refused:
            await self._one_by_one(batch, refused, plans)
        # Only what is new: a Gsid remembered already would be written again for nothing.
        learnt = {
            c.key: c.progress.gsid
            for c in companies.values()
            if c.progress.gsid and c.failure is None and c.progress.gsid != known.get(c.key)
        }
        now = self._clock()
        await self._memory.remember_gsids(batch.scope, learnt, now)
        if batch.versioned:
            # Unchanged companies too: their events are newer than the values' (see _unchanged).
            states = {
                c.key: _company_state(c, now)
                for c in companies.values()
                if c.failure is None and (c.call is not None or c.delivered is not None)
            }
            await self._memory.remember_states(batch.scope, "company", states, now)

    def _unchanged(self, batch: _Batch, company: _Company) -> bool:
        """Whether writing the company would change nothing, after leaving out every field that
        a later-received event already wrote (events of other people may be claimed first, and
        Gainsight must end with the last value received)."""
        remembered = company.delivered
        if remembered is None:
            return False
        versions = remembered.get("versions", {})
        if versions.get("Name", -1) > company.versions.get("Name", -1):
            # A later event spelt the name otherwise: keep its spelling (the key field stays).
            company.record["Name"] = remembered.get("fields", {}).get("Name", company.record["Name"])
            company.versions["Name"] = versions["Name"]
        stale = [
            k for k in company.record if k != "Name" and versions.get(k, -1) > company.versions.get(k, -1)
        ]
        for key in stale:
            del company.record[key]
            del company.versions[key]
        if stale and set(company.record) == {"Name"}:
            return True  # everything it says is already overwritten by newer events
        fresh = remembered.get("at", 0.0) >= self._clock() - self._ttl
        return batch.skip_unchanged and fresh and holds(remembered.get("fields"), company.record)

    async def _search(self, batch: _Batch, companies: list[_Company]) -> None:
        for chunk in _chunks(companies):
            call = await self._call(batch, p.company_search(batch.scope, [c.name for c in chunk]))
            outcome = classify(call.answer)
            if outcome != "delivered" and not is_no_match(call.answer):
                self._fail(chunk, call)
                continue
            found = gsid_by_name([c.name for c in chunk], call.answer) if outcome == "delivered" else {}
            for company in chunk:
                gsid = found.get(company.name)
                company.progress = replace(
                    company.progress, searched=True, found=gsid is not None, gsid=gsid or None
                )
            self._saved(batch.credentials.destination, "company_batched", len(chunk) - 1)

    async def _write(self, batch: _Batch, step: str, companies: list[_Company]) -> None:
        build = p.company_insert if step == "insert" else p.company_update
        for chunk in _chunks(companies):
            call = await self._call(batch, build(batch.scope, [c.record for c in chunk]))
            outcome = classify(call.answer)
            gone = step == "update" and (
                is_no_match(call.answer) or (outcome == "delivered" and matched_nothing(call.answer))
            )
            if gone:  # deleted in Gainsight since we learnt it: forget it and search afresh
                await self._memory.forget_gsids(batch.scope, [c.key for c in chunk])
                await self._memory.forget_states(batch.scope, "company", [c.key for c in chunk])
                for company in chunk:
                    company.progress = CompanyProgress()
                    company.delivered = None
                continue
            if outcome != "delivered":
                self._fail(chunk, call)
                continue
            written = gsids_written([c.record["Name"] for c in chunk], call.answer)
            for company in chunk:
                gsid = written.get(company.record["Name"]) or company.progress.gsid
                if not gsid:
                    error = GainsightError(
                        f"company {step} succeeded but Gainsight returned no Gsid",
                        outcome="retryable",
                        http_status=call.answer.status,
                        response=call.answer.body,
                    )
                    company.failure = Fate("retryable", call, error)
                    continue
                company.progress = replace(company.progress, gsid=gsid, written=True)
                company.call = call
            self._saved(batch.credentials.destination, "company_batched", len(chunk) - 1)

    def _fail(self, chunk: list[_Company], call: Call) -> None:
        fate = self._failed(call)
        shared = sum(len(company.jobs) for company in chunk) > 1
        for company in chunk:
            company.failure, company.shared_failure = fate, shared

    async def _one_by_one(self, batch: _Batch, refused: list[_Company], plans: Sequence[Job]) -> None:
        """A refused merged write, redone event by event so that only its cause fails."""
        by_id = {job.id: job for job in plans}
        for company in refused:
            gsid: str | None = None
            for job_id in company.jobs:
                plan = by_id[job_id].plan
                assert isinstance(plan, p.GroupPlan)
                alone = _Company(plan.company_name, dict(plan.company), [job_id])
                alone.versions = dict.fromkeys(plan.company, job_id)
                single = {company.key: alone}
                await self._resolve(batch, single, split=False, plans=plans)
                alone = single[company.key]
                if alone.failure is not None:
                    batch.fates[job_id] = alone.failure
                else:
                    gsid = alone.progress.gsid
                    batch.fates.pop(job_id, None)
                    company.call = alone.call
            company.failure = None if gsid else company.failure
            company.progress = CompanyProgress(gsid=gsid, written=gsid is not None)
            company.jobs = [j for j in company.jobs if j not in batch.fates]

    # ---- step 2: the person, and tracks ----

    async def _run_person(self, batch: _Batch, run: Sequence[Job], gsids: dict[int, str]) -> None:
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

    async def _place(self, batch: _Batch, job: Job, state: _RunState) -> None:
        if state.blocked is None and isinstance(job.plan, p.TrackPlan):
            state.blocked = await self._flush(batch, state) or await self._track(batch, job)
            return
        if state.blocked is None and job.id in batch.fates:  # its company failed
            failed = batch.fates[job.id]
            if failed.outcome != "aborted":
                state.blocked = await self._flush(batch, state) or failed
            return
        if state.blocked is None and state.segment and _another_person(state.segment[0], job):
            state.blocked = await self._flush(batch, state)
        if state.blocked is not None:
            batch.fates.setdefault(job.id, Fate("deferred", retry_at=state.blocked.retry_at))
            return
        state.segment.append(job)

    async def _flush(self, batch: _Batch, state: _RunState) -> Fate | None:
        taken, state.segment = state.segment, []
        return await self._upsert(batch, taken, state.gsids) if taken else None

    async def _track(self, batch: _Batch, job: Job) -> Fate | None:
        assert isinstance(job.plan, p.TrackPlan)
        call = await self._call(batch, job.plan.request)
        fate = Fate("delivered", call) if classify(call.answer) == "delivered" else self._failed(call)
        batch.fates[job.id] = fate
        return fate if fate.outcome in ("throttled", "retryable") else None

    async def _upsert(self, batch: _Batch, segment: list[Job], gsids: dict[int, str]) -> Fate | None:
        """One Person upsert for a segment (consecutive events of one person that write one email);
        the failure that blocks the person's later events, if any."""
        plans = [job.plan for job in segment if isinstance(job.plan, p.IdentifyPlan | p.GroupPlan)]
        person = merged_person(plans, [gsids[job.id] for job in segment if job.id in gsids])
        # Two userIds may write one email: one writer per email at a time, in this process and (on
        # PostgreSQL) in every replica, from the memory's check to its update. Held within a call
        # slot, so there are never more holders than calls in flight.
        async with self._slots, self._memory.hold(batch.scope, "person", [person_key(person["Email"])]):
            call = await self._write_person(batch, segment, person)
        if call is None or classify(call.answer) == "delivered":
            return None
        if classify(call.answer) == "aborted" and len(segment) > 1:
            return await self._split(batch, segment, gsids)
        fate = await self._refused(batch, segment, call)
        for job in segment:
            batch.fates[job.id] = fate
        return fate if fate.outcome in ("throttled", "retryable") else None

    async def _write_person(self, batch: _Batch, segment: list[Job], person: dict[str, Any]) -> Call | None:
        """The upsert, unless Gainsight holds all of it already (None: the segment is unchanged);
        once delivered, the segment's fates and the memory of what Gainsight now holds."""
        key = person_key(person["Email"])
        delivered: dict[str, Any] | None = None
        if batch.skip_unchanged:
            since = self._clock() - self._ttl
            delivered = (await self._memory.delivered_states(batch.scope, "person", [key], since)).get(key)
            if holds(delivered, _flat(person)):
                for job in segment:
                    batch.fates[job.id] = self._done(batch, job, None)
                self._saved(batch.credentials.destination, "unchanged", len(segment))
                return None
        call = await self._send(batch, p.person_upsert(batch.scope, person))
        if classify(call.answer) == "delivered":
            for job in segment:
                batch.fates[job.id] = self._done(batch, job, call)
            self._saved(batch.credentials.destination, "coalesced", len(segment) - 1)
            if batch.skip_unchanged:
                await self._remember_person(batch, key, delivered, person)
        return call

    async def _split(self, batch: _Batch, segment: list[Job], gsids: dict[int, str]) -> Fate | None:
        """A refused merged upsert, redone event by event in order: only its cause fails."""
        for position, job in enumerate(segment):
            blocked = await self._upsert(batch, [job], gsids)
            if blocked is not None:
                for later in segment[position + 1 :]:
                    batch.fates[later.id] = Fate("deferred", retry_at=blocked.retry_at)
                return blocked
        return None

    async def _refused(self, batch: _Batch, segment: list[Job], call: Call) -> Fate:
        fate = self._failed(call)
        if fate.error is not None and fate.error.error_code == UNKNOWN_COMPANY_CODE:
            # A Gsid no longer names a company (deleted in Gainsight): forget it; resolve afresh.
            names = [company_key(j.plan.company_name) for j in segment if isinstance(j.plan, p.GroupPlan)]
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
        self, batch: _Batch, key: str, delivered: dict[str, Any] | None, person: dict[str, Any]
    ) -> None:
        flat = _flat(person)
        linked = set((delivered or {}).get("companies", ())) | set(flat.get("companies", ()))
        state = {**(delivered or {}), **flat, "companies": sorted(linked)}
        await self._memory.remember_states(batch.scope, "person", {key: state}, self._clock())

    @staticmethod
    def _done(batch: _Batch, job: Job, person_call: Call | None) -> Fate:
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


def _company_state(company: _Company, now: float) -> dict[str, Any]:
    """What the store remembers of a written company: its fields, the event each came from (in
    received order), and when."""
    before = company.delivered or {}
    return {
        "fields": {**before.get("fields", {}), **company.record},
        "versions": {**before.get("versions", {}), **company.versions},
        "at": now if company.call is not None else before.get("at", 0.0),  # the TTL runs from a write
    }


def _chunks(companies: list[_Company]) -> list[list[_Company]]:
    size = MAX_RECORDS_PER_CALL
    return [companies[i : i + size] for i in range(0, len(companies), size)]
