"""Values every store must hold from a track sink's events (DESIGN §3.6, §3.7): U+0000 in an
event name or a groupId (PostgreSQL's text cannot hold it) is stored as U+FFFD, and should a sink
still fail on one event, that event alone fails: the rest of its batch is delivered."""

from __future__ import annotations

from typing import Any

import pytest

from destination.config import Destination
from destination.config_sections import UsageConfig
from destination.delivery.store import Store
from destination.gainsight.usage_counter import UsageCounter
from tests.delivery.test_person_runs import DESTINATION, Service, Tenant, keyed_destination
from tests.delivery.test_usage_counts import associate, company, counted

pytestmark = pytest.mark.anyio


def counting_everything(base: Destination) -> Destination:
    assert base.config.usage is not None
    usage = UsageConfig.model_validate({**base.config.usage.model_dump(), "events": ["*"]})
    return base.model_copy(update={"config": base.config.model_copy(update={"usage": usage})})


async def test_nul_in_an_event_name_or_a_group_id_is_counted_on_every_store(store: Store) -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")
    service = Service(tenant, destination=counting_everything(keyed_destination(create=False)), store=store)
    await associate(service, u1=acme)
    await service.enqueue(
        [
            counted(1, "u1", event="Report\x00Exported"),
            {**counted(2, "u2"), "context": {"groupId": "K\x001"}},  # no association: searched by key
            counted(3, "u1"),
        ]
    )
    await service.drain()
    states = {e.message_id: (e.state, e.reason) for e in await service.events()}
    assert states["c1-u1"][0] == states["c3-u1"][0] == "counted"
    assert states["c2-u2"][0] == "filtered"  # no company has that key: unattributed, not a failure


async def test_a_sink_that_fails_on_one_event_fails_that_event_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = Tenant()
    acme = company(tenant, "Acme")
    service = Service(tenant, destination=counting_everything(DESTINATION))
    await associate(service, u1=acme, u2=acme)
    real = UsageCounter.deliver

    async def failing(self: UsageCounter, batch: Any, job: Any) -> Any:
        if job.person == "userId:u1":
            raise ValueError("a value the store refuses")
        return await real(self, batch, job)

    monkeypatch.setattr(UsageCounter, "deliver", failing)
    await service.enqueue([counted(1, "u1"), counted(2, "u2")])
    await service.drain()
    states = {e.message_id: e for e in await service.events()}
    assert states["c2-u2"].state == "counted"
    assert states["c1-u1"].state == "queued"  # to be retried, then a dead letter
    assert "internal error while delivering: ValueError" in (states["c1-u1"].history[-1].error or "")
