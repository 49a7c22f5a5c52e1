"""Step 1 of identify/group execution: every company a batch's group events name, written with
shared calls (DESIGN §3.3, §6). A company is found by its key: Name (ignoring case), or the
tenant's own field (`companyIdentity`, matched exactly), as the group plan says.

A company moves through the states of company_states.py, each needing one call (or none).

A tenant's own key never guesses: a search answering two or more companies for one key value, or
none when creating is off (`create: false`) or the events carry no Name to create it with, ends
the company's events as rejected (a reason naming the key, the value and any Gsids found).

Each round sends one `IN` search for the UNKNOWN companies, then one insert and one update of up
to 50 records for the ABSENT and KNOWN ones. A company deleted in Gainsight since its Gsid was
learnt goes back to UNKNOWN (its update matched nothing), so `MAX_COMPANY_ROUNDS` allows a second
search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from destination.errors import GainsightError, OverBudget
from destination.gainsight import plan as p
from destination.gainsight.client import Call
from destination.gainsight.companies import (
    gsid_by_name,
    gsids_by_key,
    gsids_written,
    is_no_match,
    matched_nothing,
)
from destination.gainsight.company_states import (
    MAX_COMPANY_ROUNDS,
    CompanyProgress,
    CompanyState,
    CompanyStep,
    next_company_step,
)
from destination.gainsight.endpoints import MAX_RECORDS_PER_CALL
from destination.gainsight.jobs import Batch, Fate, Job, Stage, changes_nothing, failed
from destination.gainsight.outcomes import classify
from destination.gainsight.requests import company_insert, company_search, company_update


@dataclass(slots=True)
class _Company:
    """One company during a batch."""

    key: str  # plan.company_key: the same for every event naming this company
    key_field: str
    value: str  # its key's value, as the first event of the batch spells it (searched with it)
    record: dict[str, Any]  # merged in event order, so its Name is the last event's spelling
    progress: CompanyProgress = field(default_factory=CompanyProgress)
    call: Call | None = None  # the last call that wrote it
    failure: Fate | None = None
    shared_failure: bool = False  # the failed call carried other events too
    versions: dict[str, int] = field(default_factory=dict)  # field -> id of the event it is from
    delivered: dict[str, Any] | None = None  # what the store remembers delivered (see _resolve)
    # (job, its fields, whether it may create the company): a batch may mix destinations
    parts: list[tuple[int, Mapping[str, Any], bool]] = field(default_factory=list)

    @classmethod
    def of(cls, plan: p.GroupPlan) -> _Company:
        return cls(plan.company_key, plan.key_field, plan.key_value, {})

    @property
    def jobs(self) -> list[int]:
        """The events riding on this company's write, in the order received."""
        return [job_id for job_id, _, _ in self.parts]

    def add(self, job_id: int, fields: Mapping[str, Any], create: bool) -> None:
        """One more event naming this company: its fields merged over the earlier ones'."""
        self.parts.append((job_id, fields, create))
        self.record.update(fields)
        self.versions.update(dict.fromkeys(fields, job_id))

    def drop(self, job_ids: set[int]) -> None:
        """These events no longer ride on the company's write: its record is merged without them."""
        kept = [part for part in self.parts if part[0] not in job_ids]
        self.parts, self.record, self.versions = [], {}, {}
        for part in kept:
            self.add(*part)

    def needs(self, step: CompanyStep) -> bool:
        return self.failure is None and next_company_step(self.progress) == step


class CompanyWriter(Stage):
    async def write_companies(self, batch: Batch, groups: Sequence[Job]) -> dict[int, str]:
        """Write every company the group jobs name; the Gsid per job that got one. Jobs whose
        company failed get their fate in `batch.fates`."""
        gsids = {j.id: j.progress.company_gsid for j in groups if j.progress.company_gsid is not None}
        companies: dict[str, _Company] = {}
        for job in groups:
            assert isinstance(job.plan, p.GroupPlan)
            if job.id not in gsids:  # else written by an earlier try
                company = companies.get(job.plan.company_key)
                if company is None:
                    company = companies[job.plan.company_key] = _Company.of(job.plan)
                company.add(job.id, job.plan.company, job.plan.create)
        if companies:
            # One writer per company at a time (in this process and, on PostgreSQL, across
            # replicas): a second batch searches only after the first has inserted.
            async with self._memory.hold(batch.scope, "company", sorted(companies)):
                try:
                    await self._resolve(batch, companies, split=True, plans=groups)
                except OverBudget as exc:
                    for company in companies.values():
                        if next_company_step(company.progress) and company.failure is None:
                            company.failure = Fate("deferred", retry_at=exc.retry_at)
            _hand_out(batch, companies, gsids)
        return gsids

    async def _resolve(
        self, batch: Batch, companies: dict[str, _Company], *, split: bool, plans: Sequence[Job]
    ) -> None:
        keys = list(companies)
        known = await self._memory.company_gsids(batch.scope, keys)
        remembered: dict[str, dict[str, Any]] = {}
        if batch.versioned and known:
            remembered = await self._memory.delivered_states(batch.scope, "company", list(known), 0.0)
        for key, company in companies.items():
            company.delivered = remembered.get(key)
            company.progress = CompanyProgress.remembered(known.get(key), self._unchanged(batch, company))
        searched = sum(len(c.jobs) for c in companies.values() if c.progress.gsid)
        self._saved(batch.destination, "gsid_known", searched)
        for _ in range(MAX_COMPANY_ROUNDS):
            if not any(c.failure is None and next_company_step(c.progress) for c in companies.values()):
                break
            await self._search(batch, [c for c in companies.values() if c.needs("search")])
            for step in ("insert", "update"):
                await self._write(batch, step, [c for c in companies.values() if c.needs(step)])
        for company in companies.values():
            if company.failure is None and company.progress.state is CompanyState.CURRENT:
                self._saved(batch.destination, "unchanged", len(company.jobs))
        refused = [
            c
            for c in companies.values()
            if c.failure is not None and c.failure.outcome == "aborted" and c.shared_failure
        ]
        if split and refused:
            await self._one_by_one(batch, refused, plans)
        await self._remember(batch, companies, known)

    async def _remember(self, batch: Batch, companies: dict[str, _Company], known: dict[str, str]) -> None:
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

    def _unchanged(self, batch: Batch, company: _Company) -> bool:
        """Whether writing the company would change nothing, after leaving out every field that
        a later-received event already wrote (events of other people may be claimed first, and
        Gainsight must end with the last value received)."""
        remembered = company.delivered
        if remembered is None:
            return False
        versions = remembered.get("versions", {})
        key = company.key_field
        if key == "Name" and versions.get("Name", -1) > company.versions.get("Name", -1):
            # A later event spelt the name otherwise: keep its spelling (the key field stays).
            company.record["Name"] = remembered.get("fields", {}).get("Name", company.record["Name"])
            company.versions["Name"] = versions["Name"]
        stale = [k for k in company.record if k != key and versions.get(k, -1) > company.versions.get(k, -1)]
        for field_name in stale:
            del company.record[field_name]
            del company.versions[field_name]
        if stale and company.record == {key: remembered.get("fields", {}).get(key)}:
            # Everything it says is already overwritten by newer events (its key, Name too, spelt
            # as delivered: a Name spelt otherwise is still to be written).
            return True
        fresh = remembered.get("at", 0.0) >= self._clock() - self._ttl
        return batch.skip_unchanged and fresh and changes_nothing(remembered.get("fields"), company.record)

    async def _search(self, batch: Batch, companies: list[_Company]) -> None:
        for chunk in _chunks(companies):
            key = chunk[0].key_field
            call = await self._client.call(
                company_search(batch.scope, [c.value for c in chunk], key), batch.credentials
            )
            outcome = classify(call.answer)
            if outcome != "delivered" and not is_no_match(call.answer):
                self._fail(chunk, call)
                continue
            if key == "Name":
                by_name = (
                    gsid_by_name([c.value for c in chunk], call.answer) if outcome == "delivered" else {}
                )
                found = {value: [gsid] for value, gsid in by_name.items()}
            else:
                found = (
                    gsids_by_key(key, [c.value for c in chunk], call.answer) if outcome == "delivered" else {}
                )
            for company in chunk:
                self._searched(batch, company, found.get(company.value, []), call)
            self._saved(batch.destination, "company_batched", len(chunk) - 1)

    def _searched(self, batch: Batch, company: _Company, gsids: list[str], call: Call) -> None:
        """What the search says of one company; a tenant's own key is never guessed at."""
        where = f"{company.key_field} = {company.value}"
        if len(gsids) > 1:
            listed = ", ".join(gsid or "(no Gsid)" for gsid in gsids)
            company.failure = _rejected(
                call, f"{len(gsids)} Companies have {where} ({listed}); none was written"
            )
        elif gsids:
            company.progress = CompanyProgress(CompanyState.KNOWN, gsids[0] or None)
        else:
            self._absent(batch, company, call, where)

    @staticmethod
    def _absent(batch: Batch, company: _Company, call: Call, where: str) -> None:
        """To be inserted, by the events from the first that may create it and names it on. Sent
        one by one, each event before that one would find no company and be unable to create it
        (creating is off for its destination, or it has no name): so they end as rejected here
        too, and the company is written without their fields."""
        creators = [job_id for job_id, fields, create in company.parts if create and "Name" in fields]
        early = [part for part in company.parts if not creators or part[0] < min(creators)]
        for job_id, _, create in early:
            why = "creating companies is off" if not create else "traits.name is required to create it"
            batch.fates[job_id] = company.failure = _rejected(call, f"no Company with {where}; {why}")
        company.drop({job_id for job_id, _, _ in early})
        if company.jobs:
            company.failure = None
            company.progress = CompanyProgress(CompanyState.ABSENT)

    async def _write(self, batch: Batch, step: str, companies: list[_Company]) -> None:
        for chunk in _chunks(companies):
            records = [c.record for c in chunk]
            if step == "insert":
                request = company_insert(batch.scope, records)
            else:
                request = company_update(batch.scope, records, chunk[0].key_field)
            call = await self._client.call(request, batch.credentials)
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
            self._written(batch, step, chunk, call)

    def _written(self, batch: Batch, step: str, chunk: list[_Company], call: Call) -> None:
        key = chunk[0].key_field
        written = gsids_written(key, [str(c.record[key]) for c in chunk], call.answer)
        for company in chunk:
            gsid = written.get(str(company.record[key])) or company.progress.gsid
            if not gsid:
                error = GainsightError(
                    f"company {step} succeeded but Gainsight returned no Gsid",
                    outcome="retryable",
                    http_status=call.answer.status,
                    response=call.answer.body,
                )
                company.failure = Fate("retryable", call, error)
                continue
            company.progress = replace(company.progress, state=CompanyState.WRITTEN, gsid=gsid)
            company.call = call
        self._saved(batch.destination, "company_batched", len(chunk) - 1)

    def _fail(self, chunk: list[_Company], call: Call) -> None:
        fate = failed(self._client, call)
        shared = sum(len(company.jobs) for company in chunk) > 1
        for company in chunk:
            company.failure, company.shared_failure = fate, shared

    async def _one_by_one(self, batch: Batch, refused: list[_Company], plans: Sequence[Job]) -> None:
        """A refused merged write, redone event by event so that only its cause fails. Should the
        budget run out meanwhile, the events not yet tried wait for the next window."""
        by_id = {job.id: job for job in plans}
        spent: float | None = None  # the budget is spent until then
        for company in refused:
            gsid: str | None = None
            written: set[int] = set()
            for job_id in company.jobs:
                plan = by_id[job_id].plan
                assert isinstance(plan, p.GroupPlan)
                if spent is not None:
                    batch.fates[job_id] = Fate("deferred", retry_at=spent)
                    continue
                alone = _Company.of(plan)
                alone.add(job_id, plan.company, plan.create)
                single = {company.key: alone}
                try:
                    await self._resolve(batch, single, split=False, plans=plans)
                except OverBudget as exc:
                    spent = exc.retry_at
                    batch.fates[job_id] = Fate("deferred", retry_at=spent)
                    continue
                alone = single[company.key]
                if alone.failure is not None:
                    batch.fates[job_id] = alone.failure
                else:
                    gsid = alone.progress.gsid
                    written.add(job_id)
                    batch.fates.pop(job_id, None)
                    company.call = alone.call
            # What Gainsight now holds of it: the fields of the events written, no other's.
            company.drop({job_id for job_id in company.jobs if job_id not in written})
            company.failure = None if gsid else company.failure
            company.progress = CompanyProgress(CompanyState.WRITTEN, gsid) if gsid else CompanyProgress()


def _hand_out(batch: Batch, companies: dict[str, _Company], gsids: dict[int, str]) -> None:
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


def _company_state(company: _Company, now: float) -> dict[str, Any]:
    """What the store remembers of a written company: its fields, the event each came from (in
    received order), and when."""
    before = company.delivered or {}
    return {
        "fields": {**before.get("fields", {}), **company.record},
        "versions": {**before.get("versions", {}), **company.versions},
        "at": now if company.call is not None else before.get("at", 0.0),  # the TTL runs from a write
    }


def _rejected(call: Call, reason: str) -> Fate:
    """The company's events end as rejected (DESIGN §3.3): final, not a dead letter; replayable."""
    error = GainsightError(reason, outcome="aborted", step=call.step, response=call.answer.body)
    return Fate("rejected", call, error)


def _chunks(companies: list[_Company]) -> list[list[_Company]]:
    """Calls of at most 50 records, each for one key field (a batch may mix destinations)."""
    size = MAX_RECORDS_PER_CALL
    by_key: dict[str, list[_Company]] = {}
    for company in companies:
        by_key.setdefault(company.key_field, []).append(company)
    return [same[i : i + size] for same in by_key.values() for i in range(0, len(same), size)]
