"""A Gainsight call leaves nothing for the cycle collector (DESIGN §8, the soak's RSS bar).

httpx binds a response's stream back to the response, a reference cycle: under serve's young
threshold (GSD_GC_YOUNG_THRESHOLD, 100,000) a few thousand calls' requests and responses waited
for the collector. The client lets go of the stream once the answer is read."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from destination.gainsight.client import Answer, Credentials, GainsightClient
from destination.gainsight.plan import plan_event
from destination.gainsight.track_plan import TrackPlan
from destination.mapping.spec import Specs
from tests.conftest import DOMAIN, make_config

CALLS = 50
EVENT_URL = f"https://{DOMAIN}/v1.0/api/eventManager/event"


def gainsight(request: httpx.Request) -> httpx.Response:
    if request.method != "POST" or str(request.url) != EVENT_URL:
        raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")
    if request.headers["eventName"] == "ticket_closed":
        return httpx.Response(200, json={"result": True}, headers={"X-Request-Id": "r-1"})
    return httpx.Response(502, text="<html>bad gateway</html>")


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def calls(specs: Specs, count: int, event_name: str = "Ticket Closed") -> list[Answer]:
    config = make_config(
        eventNameMap=[{"from": "Ticket Closed", "to": "ticket_closed"}, {"from": "Other", "to": "other"}],
        eventVersionMap=[{"from": "Ticket Closed", "to": "1.0"}, {"from": "Other", "to": "1.0"}],
    )
    credentials = Credentials("acme", "ak-123", "ss-456")

    async def run() -> list[Answer]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(gainsight)) as http:
            client = GainsightClient(http)
            answers = []
            for i in range(count):
                message: dict[str, Any] = {"type": "track", "event": event_name, "messageId": f"m-{i}"}
                plan = plan_event(message, config, specs)
                assert isinstance(plan, TrackPlan)
                answer, _ = await client.send_described(plan.request, credentials)
                answers.append(answer)
            return answers

    return asyncio.run(run())


@pytest.mark.usefixtures("collector_off")
def test_calls_leave_no_reference_cycles(specs: Specs) -> None:
    calls(specs, CALLS)
    # asyncio.run's loop and the client's own set-up leave a few; each call left about 20 before
    assert gc.collect() < CALLS


def test_the_answer_is_read_before_the_stream_is_let_go(specs: Specs) -> None:
    (answer,) = calls(specs, 1)
    assert (answer.status, answer.body, answer.headers["x-request-id"]) == (200, {"result": True}, "r-1")
    (failed,) = calls(specs, 1, "Other")
    assert (failed.status, failed.body) == (502, {"text": "<html>bad gateway</html>"})
