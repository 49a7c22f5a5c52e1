"""Group commit for the asyncio store (PostgreSQL finishes): calls made together share one run."""

from __future__ import annotations

import asyncio

import pytest

from destination.delivery.grouping import Grouped


class Runs:
    """A `run` that records each group it is given; item "bad" makes a group fail."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.release = asyncio.Event()

    async def __call__(self, items: list[str]) -> list[str]:
        self.groups.append(items)
        await self.release.wait()
        if "bad" in items:
            raise ValueError("bad item")
        return [item.upper() for item in items]


def test_calls_made_together_share_one_run_and_later_ones_the_next() -> None:
    async def scenario() -> tuple[list[str], list[list[str]]]:
        runs = Runs()
        grouped = Grouped(runs)
        first = [asyncio.create_task(grouped(x)) for x in ("a", "b", "c")]
        while not runs.groups:
            await asyncio.sleep(0)
        later = [asyncio.create_task(grouped(x)) for x in ("d", "e")]  # while the first runs
        runs.release.set()
        return list(await asyncio.gather(*first, *later)), runs.groups

    results, groups = asyncio.run(scenario())
    assert results == ["A", "B", "C", "D", "E"]
    assert groups == [["a", "b", "c"], ["d", "e"]]


def test_a_failed_group_is_rerun_item_by_item_so_one_bad_item_fails_alone() -> None:
    async def scenario() -> tuple[list[str | BaseException], list[list[str]]]:
        runs = Runs()
        runs.release.set()
        grouped = Grouped(runs)
        results = await asyncio.gather(*(grouped(x) for x in ("a", "bad", "c")), return_exceptions=True)
        return list(results), runs.groups

    results, groups = asyncio.run(scenario())
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)
    assert groups == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_groups_are_at_most_max_group_items() -> None:
    async def scenario() -> list[list[str]]:
        runs = Runs()
        runs.release.set()
        grouped = Grouped(runs, max_group=2)
        await asyncio.gather(*(grouped(x) for x in "abcde"))
        return runs.groups

    assert asyncio.run(scenario()) == [["a", "b"], ["c", "d"], ["e"]]


def test_a_cancelled_runner_leaves_no_caller_waiting() -> None:
    async def scenario() -> None:
        runs = Runs()  # never released
        grouped = Grouped(runs)
        call = asyncio.create_task(grouped("a"))
        while not runs.groups:
            await asyncio.sleep(0)
        assert grouped._runner is not None
        grouped._runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    asyncio.run(scenario())
