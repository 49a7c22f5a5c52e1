"""A track event published to the Events Framework (DESIGN §3.4): one call, in its place in the
person's order. The sink for `TrackPlan`; the Timeline and usage sinks publish through it too
when an event is also published (alsoPublish, usage.publish)."""

from __future__ import annotations

from destination.gainsight.jobs import Batch, Fate, Job, Stage, failed
from destination.gainsight.outcomes import classify
from destination.gainsight.track_plan import TrackPlan


class Publisher(Stage):
    async def deliver(self, batch: Batch, job: Job) -> Fate:
        assert isinstance(job.plan, TrackPlan)
        return await self.publish(batch, job.plan)

    async def publish(self, batch: Batch, plan: TrackPlan) -> Fate:
        """Delivered through the call, or how it failed; OverBudget propagates (nothing was sent)."""
        call = await self._client.call(plan.request, batch.credentials)
        return Fate("delivered", call) if classify(call.answer) == "delivered" else failed(self._client, call)
