"""The company a track event is written to when it is not published but becomes a Timeline
activity or a usage count (DESIGN §3.6, §3.7): the one its person was last associated with by a
group event, last in the person's order (remembered in the store as the person's group events
are delivered, executor.py), else `context.groupId` read through `companyIdentity`: its Gsid
remembered, else one search by that key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from destination.gainsight import plan as p
from destination.gainsight.companies import gsids_by_key, is_no_match
from destination.gainsight.company_source import CompanySource
from destination.gainsight.jobs import Batch, Fate, Job, Stage, failed
from destination.gainsight.outcomes import classify
from destination.gainsight.requests import company_search
from destination.gainsight.timeline import ActivityPlan
from destination.gainsight.usage import CountPlan
from destination.sized_cache import SizedCache


@dataclass(frozen=True, slots=True)
class Found:
    """The company's Gsid (None: the event has no company), or the failed search's fate."""

    gsid: str | None
    failed: Fate | None = None


NO_COMPANY_SECONDS = 300.0
"""How long a search that found no single company is believed: a sender whose tracks name an
unknown groupId costs one search per five minutes, not one per event (each process's own memory)."""


class CompanyFinder(Stage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._none_until: SizedCache[tuple[str, str], float] = SizedCache(1 << 20, 1 << 10)

    async def find(self, batch: Batch, job: Job, source: CompanySource) -> Found:
        """Where `job`'s track goes; OverBudget propagates (nothing was sent)."""
        if job.person:
            if job.person not in batch.last_companies:
                await self._read(batch, {job.person})
            gsid = batch.last_companies[job.person]
            if gsid is not None:
                return Found(gsid)
        if source.field is None or source.value is None:
            return Found(None)
        key = p.company_key(source.field, source.value)
        known = await self._memory.company_gsids(batch.scope, [key])
        if key in known:
            return Found(known[key])
        until = self._none_until.get((batch.scope, key))
        if until is not None and until > self._clock():
            return Found(None)
        call = await self._client.call(
            company_search(batch.scope, [source.value], source.field), batch.credentials
        )
        if is_no_match(call.answer):
            return self._none(batch, key)
        if classify(call.answer) != "delivered":
            return Found(None, failed(self._client, call))
        found = gsids_by_key(source.field, [source.value], call.answer).get(source.value, [])
        if len(found) != 1 or not found[0]:
            return self._none(batch, key)  # none, or several: a tenant's key is never guessed at (§3.3)
        await self._memory.remember_gsids(batch.scope, {key: found[0]}, self._clock())
        return Found(found[0])

    async def read_last_companies(self, batch: Batch, jobs: Iterable[Job]) -> None:
        """The last companies of the people whose tracks need one, into `batch`: one store read
        for the execution, not one per event."""
        finding = (job for job in jobs if isinstance(job.plan, ActivityPlan | CountPlan))
        await self._read(batch, {job.person for job in finding if job.person})

    async def _read(self, batch: Batch, persons: set[str]) -> None:
        if persons:
            last = await self._memory.last_companies(batch.destination, sorted(persons))
            batch.last_companies.update({person: last.get(person) for person in persons})

    def _none(self, batch: Batch, key: str) -> Found:
        self._none_until.put((batch.scope, key), self._clock() + NO_COMPANY_SECONDS, 100 + len(key))
        return Found(None)
