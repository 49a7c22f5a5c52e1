"""Group commit for an asyncio store: calls made together share one transaction.

The first call starts a group; calls made while it runs wait and form the next one, so a batch of
settles submitted at once costs one transaction (one commit, one round of locks) instead of one
each, with no timer. A failed group is rerun item by item, so one bad item fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Grouped(Generic[T, R]):
    """`await grouped(item)`: the result of `run(group)` for `item`, `group` being the items
    submitted together with it (`run` returns one result per item, in order)."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]], max_group: int = 500) -> None:
        self._run = run
        self._max = max_group
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run_groups())
        return await future

    async def _run_groups(self) -> None:
        group: list[tuple[T, asyncio.Future[R]]] = []
        try:
            await asyncio.sleep(0)  # the calls submitted together join the first group
            while self._waiting:
                group, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                live = [(item, future) for item, future in group if not future.done()]
                if live:
                    await self._run_group(live)
        except BaseException:  # cancelled: no caller is left waiting forever
            for _, future in group + self._waiting:
                future.cancel()
            self._waiting = []
            raise

    async def _run_group(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in group])
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], exc)
            else:
                for one in group:
                    await self._run_group([one])
            return
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result)


def _settle(future: asyncio.Future[R], outcome: R | Exception) -> None:
    if future.done():  # its caller was cancelled meanwhile
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
