"""Two userIds whose events write one email never write it at once (DESIGN §5): each is its own
person, ordered apart, but the executor holds the email around the upsert, in this process and
(PostgreSQL) across replicas: here two executors, each on a store of its own over one database."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from destination.gainsight import plan as p
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor, Job
from destination.jsonutil import loads
from destination.mapping.spec import default_specs
from destination.sandbox import sandbox_destination
from destination.simulator import SimulatorConfig, create_simulator_app
from tests.delivery.conftest import StoreFactory

pytestmark = pytest.mark.anyio

DESTINATION = sandbox_destination()
CREDENTIALS = Credentials.of(DESTINATION.id, DESTINATION.config)
SPECS = default_specs()
PEOPLE_PATH = "/v1.0/api/people"


class SlowPeople:
    """A simulated tenant whose People upserts take a while; it counts, per email, the upserts in
    flight at once (the most ever seen), and overall."""

    def __init__(self) -> None:
        config = SimulatorConfig.sandbox(rate_limit_per_minute=1_000_000, rate_limit_per_day=10_000_000)
        self.app = create_simulator_app(config)
        self._asgi = httpx.ASGITransport(app=self.app)
        self.in_flight: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.most_overall = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != PEOPLE_PATH:
            return await self._asgi.handle_async_request(request)
        email = str(loads(request.content)["Email"]).casefold()
        self.in_flight[email] += 1
        self.most[email] = max(self.most[email], self.in_flight[email])
        self.most_overall = max(self.most_overall, sum(self.in_flight.values()))
        try:
            await asyncio.sleep(0.05)
            return await self._asgi.handle_async_request(request)
        finally:
            self.in_flight[email] -= 1

    def client(self) -> GainsightClient:
        return GainsightClient(
            httpx.AsyncClient(transport=httpx.MockTransport(self.handle)), base_url="http://sim"
        )


def identify(user: str, n: int, email: str, **traits: Any) -> Job:
    event = {"type": "identify", "messageId": f"m{n}", "userId": user, "traits": {"email": email, **traits}}
    return Job(n, p.plan_event(event, DESTINATION.config, SPECS))


async def test_two_user_ids_writing_one_email_never_write_it_at_once(make_store: StoreFactory) -> None:
    tenant = SlowPeople()
    first, second = make_store(), make_store(shared=True)  # two replicas (PostgreSQL), or one process
    executors = [
        Executor(tenant.client(), store, unchanged_ttl_seconds=86_400, clock=lambda: 1.0)
        for store in (first, second)
    ]
    # Six userIds write shared@ (cased otherwise by some); each also owns an address of its own.
    runs = [
        [
            identify(f"u{i}", 10 * i, "Shared@Example.com" if i % 2 else "shared@example.com", seats=i),
            identify(f"u{i}", 10 * i + 1, f"own{i}@example.com", seats=i),
        ]
        for i in range(6)
    ]
    fates = await asyncio.gather(
        executors[0].run(runs[:3], CREDENTIALS),
        executors[1].run(runs[3:], CREDENTIALS),
        executors[0].run([[identify("u9", 90, "shared@example.com", seats=9)]], CREDENTIALS),
    )
    assert {fate.outcome for found in fates for fate in found.values()} == {"delivered"}
    assert tenant.most["shared@example.com"] == 1
    assert tenant.most_overall > 1  # other emails were written side by side meanwhile
    people = {str(person["Email"]).casefold() for person in tenant.app.state.simulator.people_view()}
    assert len(people) == 7
