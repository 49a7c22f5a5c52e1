"""A track event published to the Events Framework (DESIGN §3.4): one call, in its place in the
person's order. The sink for `TrackPlan`; Timeline and usage counts have their own."""

from __future__ import annotations

from destination.gainsight import plan as p
from destination.gainsight.jobs import Batch, Fate, Job, Stage
from destination.gainsight.outcomes import classify


class Publisher(Stage):
    async def deliver(self, batch: Batch, job: Job) -> Fate:
        assert isinstance(job.plan, p.TrackPlan)
        call = await self._caller.call(batch, job.plan.request)
        return Fate("delivered", call) if classify(call.answer) == "delivered" else self._caller.failed(call)
