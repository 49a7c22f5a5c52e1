"""Holding company names while a company is searched for and written (so it is created once).

`Store.hold_companies(scope, names)` is held around a company's search-then-insert: while one
holder has a name, nobody else sharing the store gets it, so a second writer searches only after
the first has inserted, finds the company and does not create it again. Names are compared
casefolded, as Gainsight matches them. The PostgreSQL store holds them across every replica
(advisory locks); `NameHolds` here is the in-process version the embedded stores use.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path


def hold_keys(scope: str, names: Sequence[str]) -> list[tuple[str, str]]:
    """The keys to take, in the one order every holder takes them (so holders never deadlock)."""
    return sorted({(scope, name.casefold()) for name in names})


class NameHolds:
    """Keyed asyncio locks, each dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, scope: str, names: Sequence[str]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for key in hold_keys(scope, names):
                lock, users = self._locks.get(key, (asyncio.Lock(), 0))
                self._locks[key] = (lock, users + 1)
                stack.callback(self._release, key)
                await stack.enter_async_context(lock)
            yield

    def _release(self, key: tuple[str, str]) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)


_BY_FILE: dict[Path, NameHolds] = {}


def holds_of(path: Path) -> NameHolds:
    """One NameHolds per store file, so every store this process opens on it shares them."""
    return _BY_FILE.setdefault(path.resolve(), NameHolds())
