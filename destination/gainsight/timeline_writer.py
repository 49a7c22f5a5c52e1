"""The Timeline sink (DESIGN §3.6): performs an `ActivityPlan` (timeline.py) for one track event,
in its place in the person's order.

    activity written by an earlier try (Progress)        → skip to the publish
    no company found                                     → rejected, "no company: …"
    activity saved                                       → written
    refused as a duplicate ExternalId                    → written by an earlier try whose answer
                                                           was lost (a timeout, a crash): delivered,
                                                           the refusal kept in the event's history
    any other failure                                    → that failure (retried or dead)
    written, alsoPublish                                 → one publish; should it fail, or the
                                                           budget be spent, the next try remembers
                                                           the activity is written and only publishes

Gainsight keeps ExternalId unique per tenant, so an activity is never written twice, whatever
retries and crashes happen; the publish goes out only once the activity is written.
"""

from __future__ import annotations

from dataclasses import replace

from destination.errors import GainsightError, OverBudget
from destination.gainsight.client import Call, GainsightClient
from destination.gainsight.company_source import CompanySource
from destination.gainsight.jobs import Batch, Fate, Job, Progress, failed
from destination.gainsight.outcomes import classify, describe
from destination.gainsight.publisher import Publisher
from destination.gainsight.timeline import ActivityPlan, refused_as_duplicate
from destination.gainsight.track_company import CompanyFinder
from destination.gainsight.track_plan import TrackPlan


def _no_company(source: CompanySource) -> GainsightError:
    why = "the person was never associated with a company by a group event"
    if source.field is not None and source.value is not None:
        why += f", and no single Company has {source.field} = {source.value} (context.groupId)"
    return GainsightError(f"no company: {why}", outcome="aborted")


class ActivityWriter:
    """The Timeline sink: a track's activity, then its publish when asked for (module docstring)."""

    def __init__(self, client: GainsightClient, finder: CompanyFinder, publisher: Publisher) -> None:
        self._client = client
        self._finder = finder
        self._publisher = publisher

    async def deliver(self, batch: Batch, job: Job) -> Fate:
        """OverBudget before the activity is written propagates (nothing was sent)."""
        plan = job.plan
        assert isinstance(plan, ActivityPlan)
        note: str | None = None
        call: Call | None = None
        if not job.progress.activity_written:
            found = await self._finder.find(batch, job, plan.company)
            if found.failed is not None:
                return found.failed
            if found.gsid is None:
                return Fate("rejected", error=_no_company(plan.company))
            call = await self._client.call(plan.request(found.gsid, job.received_at), batch.credentials)
            if refused_as_duplicate(call.answer, plan.external_id):
                note = f"saved by an earlier attempt; refused now as a duplicate: {describe(call.answer)}"
            elif classify(call.answer) != "delivered":
                return failed(self._client, call)
        if plan.publish is None:
            return Fate("delivered", call, note=note)
        if call is not None:
            note = f"Timeline activity: {note or 'saved'} (call {call.id}); then published"
        return await self._publish(batch, plan.publish, note)

    async def _publish(self, batch: Batch, publish: TrackPlan, note: str | None) -> Fate:
        """The publish of an event whose activity is written: a later try only publishes."""
        written = Progress(activity_written=True)
        try:
            fate = await self._publisher.publish(batch, publish)
        except OverBudget as exc:
            return Fate("deferred", progress=written, retry_at=exc.retry_at)
        return replace(fate, note=note) if fate.outcome == "delivered" else replace(fate, progress=written)
