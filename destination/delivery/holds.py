"""Holding keys while what they name is written in Gainsight, so that two writers never write one
record at once (DESIGN §3.3, §5).

`Store.hold(scope, kind, keys)`: while one holder has a key, nobody else sharing the store gets it.
Keys are compared casefolded, as Gainsight matches them, within their kind and scope (the tenant):
- `company`: a company's name, held around its search-then-insert, so a second writer searches
  only after the first has inserted, finds the company and does not create it again;
- `person`: a Person's email, held around its upsert (with the delivered-state check before it
  and the memory after it): two userIds whose events write one email never write it at once;
- `usage`: a destination id, held around a flush of its usage counts (gainsight/usage_flush.py),
  so two replicas never write one destination's counts at once.
The PostgreSQL store holds them across every replica (advisory locks on `lock_text`); `Holds`
here is the in-process version the embedded stores use, and PostgreSQL's first step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Literal

HoldKind = Literal["company", "person", "usage"]
HoldKey = tuple[str, str, str]  # (kind, scope, casefolded key)


def hold_keys(scope: str, kind: HoldKind, keys: Sequence[str]) -> list[HoldKey]:
    """The keys to take, in the one order every holder takes them (so holders never deadlock)."""
    return sorted({(kind, scope, key.casefold()) for key in keys})


def lock_text(key: HoldKey) -> str:
    """What PostgreSQL's advisory lock hashes for a key. A company's is `scope \\x1f name`, as the
    releases before person holds hashed it, so replicas of both exclude each other in an upgrade."""
    kind, scope, name = key
    text = f"{scope}\x1f{name}"
    return text if kind == "company" else f"{kind}\x1e{text}"


class Holds:
    """Keyed asyncio locks, each dropped once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[HoldKey, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, scope: str, kind: HoldKind, keys: Sequence[str]) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for key in hold_keys(scope, kind, keys):
                lock, users = self._locks.get(key, (asyncio.Lock(), 0))
                self._locks[key] = (lock, users + 1)
                stack.callback(self._release, key)
                await stack.enter_async_context(lock)
            yield

    def waiting(self) -> int:
        """How many holders are queued behind another's hold, in this process."""
        return sum(users - 1 for _, users in self._locks.values())

    def _release(self, key: HoldKey) -> None:
        lock, users = self._locks[key]
        if users == 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)


_BY_FILE: dict[Path, Holds] = {}


def holds_of(path: Path) -> Holds:
    """One Holds per store file, so every store this process opens on it shares them."""
    return _BY_FILE.setdefault(path.resolve(), Holds())
