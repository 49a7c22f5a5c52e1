"""The rate governor: no Gainsight call is sent over the tenant's budget (DESIGN §5).

Gainsight counts synchronous calls in fixed windows aligned to the minute and the UTC day
(100/minute and 50,000/day by default). The counters live in the store, so the budget survives
restarts and holds across every worker and process sharing it; `Store.take_budget` counts calls
in all the windows given or in none.

Clock skew: our clock and Gainsight's differ a little, and a call lands some time after it is
sent; say by less than `guard_seconds` (g). A call made within g of a boundary may then be
counted by Gainsight on either side of it, so it is counted in BOTH windows here, and made only
if both have room: every window of Gainsight's then sees at most the calls counted in one of
ours, never more than the limit. A call away from the edges needs room in its own window only,
but may only bring it to `limit - margin` (margin: 2% of the limit, at least 1, at most half):
that reserve is what the calls near the edges spend, so a busy window does not leave the edges
with nothing. Nothing is ever refused while the windows it may be counted in have budget left.

Pools: the transformer routes (rudder-server's Company calls) spend at most half of each window
(`transformer_share`), counted in the same shared windows plus a sub-window of their own, so the
delivery workers always keep the other half. Callers say which pool they spend from with
`budget_pool()` (a context variable, so it follows the request through the shared client).

Blocks: with a large budget, a process takes up to `max_block` calls per store transaction and
hands them out locally until the window's edge band; the unused rest of a block is lost when the
window ends (at most 1% of the smallest limit a process, since a block is never larger), and a
block is never taken where a single call would be refused. With the default 100/minute budget
the block is one call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from destination.delivery.store import RATE_WINDOW_RETENTION_SECONDS, BudgetWindow, RateCounter
from destination.settings import default

DELIVERY_POOL = "delivery"
TRANSFORMER_POOL = "transformer"
_POOL: ContextVar[str] = ContextVar("gsd_budget_pool", default=DELIVERY_POOL)


@contextmanager
def budget_pool(name: str) -> Iterator[None]:
    """Calls made inside the block (and tasks it starts) spend from pool `name`."""
    token = _POOL.set(name)
    try:
        yield
    finally:
        _POOL.reset(token)


def current_pool() -> str:
    return _POOL.get()


@dataclass(frozen=True, slots=True)
class RateWindow:
    """A fixed window of `length_seconds`, aligned to the unix epoch, allowing `limit` calls."""

    name: str
    length_seconds: float
    limit: int

    def __post_init__(self) -> None:
        if not 0 < self.length_seconds <= RATE_WINDOW_RETENTION_SECONDS / 2:
            raise ValueError(f"rate window {self.name!r}: length must be in (0, 1 day]")
        if self.limit < 1:
            raise ValueError(f"rate window {self.name!r}: limit must be at least 1")

    def start(self, now: float) -> float:
        """floor(now / length) * length: the minute, or the UTC day, containing `now`."""
        return math.floor(now / self.length_seconds) * self.length_seconds

    def end(self, now: float) -> float:
        return self.start(now) + self.length_seconds

    @property
    def margin(self) -> int:
        """The reserve for calls near the window's edges: 2% of the limit, 1 to limit/2."""
        return min(max(1, self.limit // 50), self.limit // 2)


def default_windows(
    per_minute: int = default("rate_limit_per_minute"),
    per_day: int = default("rate_limit_per_day"),
    minute_seconds: float = default("rate_minute_seconds"),
    day_seconds: float = default("rate_day_seconds"),
) -> tuple[RateWindow, ...]:
    """Gainsight's synchronous-call budget: a minute and a UTC day (GSD_RATE_LIMIT_PER_MINUTE /
    _PER_DAY; the windows' lengths are shorter only in tests and demos)."""
    return (RateWindow("minute", minute_seconds, per_minute), RateWindow("day", day_seconds, per_day))


TIMELINE_MINUTE = "timeline_minute"


def timeline_windows(
    per_minute: int = default("timeline_rate_limit_per_minute"),
    per_day: int = default("rate_limit_per_day"),
    counts_toward_day: bool = default("timeline_counts_toward_day"),
    minute_seconds: float = default("rate_minute_seconds"),
    day_seconds: float = default("rate_day_seconds"),
) -> tuple[RateWindow, ...]:
    """Timeline's own budget class (DESIGN §3.6): a minute of its own and, unless
    GSD_TIMELINE_COUNTS_TOWARD_DAY=false, the sync day itself (one name, so one count in the store)."""
    minute = RateWindow(TIMELINE_MINUTE, minute_seconds, per_minute)
    return (minute, RateWindow("day", day_seconds, per_day)) if counts_toward_day else (minute,)


@dataclass(frozen=True, slots=True)
class _Ask:
    """What one call at `now` must find room in, and when to ask again if it does not."""

    windows: tuple[BudgetWindow, ...]
    retry_at: dict[str, float]  # by window name
    in_band: bool
    starts: tuple[float, ...]  # a leased block is good for these windows only


class RateGovernor:
    """Grants calls per tenant within every window's limit, counted in the shared store."""

    def __init__(
        self,
        store: RateCounter,
        windows: Sequence[RateWindow] = default_windows(),
        *,
        guard_seconds: float = 1.0,
        transformer_share: float = 0.5,
        max_block: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not windows:
            raise ValueError("a rate governor needs at least one window")
        self._by_name = {window.name: window for window in windows}
        if len(self._by_name) != len(windows):
            raise ValueError("rate window names must be unique")
        if any(not 0 <= 4 * guard_seconds < w.length_seconds for w in windows):
            raise ValueError("guard_seconds must be at least 0 and under a quarter of each window")
        if not 0 <= transformer_share <= 1 or max_block < 1:
            raise ValueError("transformer_share must be in [0, 1] and max_block at least 1")
        self.windows = tuple(windows)
        self._store = store
        self._guard = guard_seconds
        self._share = transformer_share
        self._clock = clock
        smallest = min(w.limit for w in windows)
        self._block = max(1, min(max_block, smallest // 100))
        # (tenant, pool) -> (window starts, calls left) of the block taken last
        self._leased: dict[tuple[str, str], tuple[tuple[float, ...], int]] = {}

    async def try_acquire(self, tenant_key: str, now: float, pool: str | None = None) -> float | None:
        """Count one call for `tenant_key` at `now` from `pool` (default: the caller's
        `budget_pool`): None if granted, else the time worth asking again."""
        pool = pool or current_pool()
        ask = self._ask(now, pool)
        if not ask.in_band:
            starts, left = self._leased.get((tenant_key, pool), ((), 0))
            if left > 0 and starts == ask.starts:
                self._leased[(tenant_key, pool)] = (starts, left - 1)
                return None
            block = self._block
            if block > 1 and await self._store.take_budget(tenant_key, ask.windows, block) is None:
                self._leased[(tenant_key, pool)] = (ask.starts, block - 1)
                return None
        full = await self._store.take_budget(tenant_key, ask.windows)
        return None if full is None else ask.retry_at[full]

    async def calls_left(self, tenant_key: str, now: float) -> int:
        """Calls `try_acquire` would still grant the delivery workers for `tenant_key` at `now`
        (the room left in each window a call at `now` is counted in, plus what is left of this
        process's block): what the dispatcher sizes its claims by, so that it claims no events
        the budget would only put back."""
        ask = self._ask(now, DELIVERY_POOL)
        room = []
        for name, start, limit in ask.windows:  # one read each: a band's two windows share a name
            used = await self._store.budget_used(tenant_key, [(name, start)])
            room.append(limit - used.get(name, 0))
        starts, block = self._leased.get((tenant_key, DELIVERY_POOL), ((), 0))
        return max(0, min(room)) + (block if starts == ask.starts and not ask.in_band else 0)

    def next_room_at(self, now: float) -> float:
        """The first time after `now` that a window may have room again, when none has now
        (counts only grow within a window): the earliest time worth asking again."""
        return min(self._ask(now, DELIVERY_POOL).retry_at.values())

    def _ask(self, now: float, pool: str) -> _Ask:
        g = self._guard
        entries: list[BudgetWindow] = []
        retry_at: dict[str, float] = {}
        in_band = False
        for w in self.windows:
            start, end = w.start(now), w.end(now)
            if now < start + g:  # may be counted in the previous window too
                in_band = True
                entries += [(w.name, start, w.limit), (w.name, start - w.length_seconds, w.limit)]
                retry_at[w.name] = start + g
            elif now >= end - g:  # may be counted in the next window too
                in_band = True
                entries += [(w.name, start, w.limit), (w.name, end, w.limit)]
                retry_at[w.name] = end + g
            else:  # room up to the margin, which opens at the edge band
                margin = w.margin if g > 0 else 0
                entries.append((w.name, start, w.limit - margin))
                retry_at[w.name] = end - g if margin else end + g
            if pool != DELIVERY_POOL:
                share = f"{w.name}/{pool}"
                entries.append((share, start, math.floor(w.limit * self._share)))
                retry_at[share] = end
        return _Ask(tuple(entries), retry_at, in_band, tuple(w.start(now) for w in self.windows))


def timeline_governor(
    store: RateCounter, windows: Sequence[RateWindow], *, guard_seconds: float = 1.0
) -> RateGovernor:
    """Timeline's governor: one call a grant, since a block would also take from the sync day it
    shares (`timeline_windows`), and what a block leaves unused is lost when its minute ends."""
    return RateGovernor(store, windows, guard_seconds=guard_seconds, max_block=1)
