"""Company writes shared across concurrent transformer requests (CompanyBatcher)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from destination.errors import GainsightError
from destination.gainsight.client import Credentials
from destination.gainsight.company_batches import CompanyBatcher
from destination.gainsight.plan import GroupPlan

CREDENTIALS = Credentials("acme", "ak")


def plan(name: str, domain: str = "acme.gainsightcloud.com") -> GroupPlan:
    return GroupPlan(domain=domain, company={"Name": name}, email="a@x.com", diagnostics=())


class FakeGainsight:
    """resolve_many that takes one loop turn per call and records the names of each call."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def resolve_many(
        self, plans: Sequence[GroupPlan], credentials: Credentials
    ) -> list[str | GainsightError]:
        self.calls.append([p.company_name for p in plans])
        await asyncio.sleep(0.01)
        if self.fail == "all":
            raise GainsightError("throttled", outcome="throttled")
        return [
            GainsightError("refused", outcome="aborted")
            if p.company_name == self.fail
            else f"G-{p.company_name}"
            for p in plans
        ]


def test_concurrent_requests_share_the_next_write() -> None:
    gainsight = FakeGainsight()
    batcher = CompanyBatcher(gainsight.resolve_many)

    async def run() -> list[list[str | GainsightError]]:
        first = asyncio.ensure_future(batcher.resolve([plan("A")], CREDENTIALS))
        await asyncio.sleep(0)  # A's write is under way; B, C and D arrive meanwhile
        rest = [batcher.resolve([plan(n)], CREDENTIALS) for n in "BCD"]
        return [await first, *await asyncio.gather(*rest)]

    assert asyncio.run(run()) == [["G-A"], ["G-B"], ["G-C"], ["G-D"]]
    assert gainsight.calls == [["A"], ["B", "C", "D"]]


def test_tenants_are_written_apart() -> None:
    gainsight = FakeGainsight()
    batcher = CompanyBatcher(gainsight.resolve_many)

    async def run() -> None:
        await asyncio.gather(
            batcher.resolve([plan("A")], CREDENTIALS),
            batcher.resolve([plan("B", "other.gainsightcloud.com")], CREDENTIALS),
        )

    asyncio.run(run())
    assert sorted(gainsight.calls) == [["A"], ["B"]]


@pytest.mark.parametrize(
    ("fail", "expected"), [("B", ["G-A", "refused"]), ("all", ["throttled", "throttled"])]
)
def test_each_request_gets_its_own_fate(fail: str, expected: list[str]) -> None:
    batcher = CompanyBatcher(FakeGainsight(fail=fail).resolve_many)
    results = asyncio.run(batcher.resolve([plan("A"), plan("B")], CREDENTIALS))
    assert [r if isinstance(r, str) else r.message for r in results] == expected


def test_a_request_that_goes_away_does_not_stop_the_others() -> None:
    gainsight = FakeGainsight()
    batcher = CompanyBatcher(gainsight.resolve_many)

    async def run() -> list[str | GainsightError]:
        gone = asyncio.ensure_future(batcher.resolve([plan("A")], CREDENTIALS))
        await asyncio.sleep(0)
        staying = asyncio.ensure_future(batcher.resolve([plan("B")], CREDENTIALS))
        await asyncio.sleep(0)
        gone.cancel()
        return await staying

    assert asyncio.run(run()) == ["G-B"]
    assert gainsight.calls == [["A"], ["B"]]
