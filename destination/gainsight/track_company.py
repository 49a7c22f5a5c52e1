"""The company a track event is written to when it is not published but becomes a Timeline
activity or a usage count (DESIGN §3.6, §3.7): the one its person was last associated with by a
group event, last in the person's order (remembered in the store as the person's group events
are delivered, person_runs.py), else `context.groupId` read through `companyIdentity`: its Gsid
remembered, else one search by that key.
"""

from __future__ import annotations

from dataclasses import dataclass

from destination.gainsight import plan as p
from destination.gainsight.companies import gsids_by_key, is_no_match
from destination.gainsight.company_source import CompanySource
from destination.gainsight.jobs import Batch, Fate, Job, Stage
from destination.gainsight.outcomes import classify


@dataclass(frozen=True, slots=True)
class Found:
    """The company's Gsid (None: the event has no company), or the failed search's fate."""

    gsid: str | None
    failed: Fate | None = None


class CompanyFinder(Stage):
    async def find(self, batch: Batch, job: Job, source: CompanySource) -> Found:
        """Where `job`'s track goes; OverBudget propagates (nothing was sent)."""
        if job.person:
            last = await self._memory.last_companies(batch.destination, [job.person])
            if job.person in last:
                return Found(last[job.person])
        if source.field is None or source.value is None:
            return Found(None)
        key = p.company_key(source.field, source.value)
        known = await self._memory.company_gsids(batch.scope, [key])
        if key in known:
            return Found(known[key])
        call = await self._caller.call(batch, p.company_search(batch.scope, [source.value], source.field))
        if is_no_match(call.answer):
            return Found(None)
        if classify(call.answer) != "delivered":
            return Found(None, self._caller.failed(call))
        found = gsids_by_key(source.field, [source.value], call.answer).get(source.value, [])
        if len(found) != 1 or not found[0]:
            return Found(None)  # none, or several: a tenant's own key is never guessed at (§3.3)
        await self._memory.remember_gsids(batch.scope, {key: found[0]}, self._clock())
        return Found(found[0])
