"""The rate governor: no Gainsight call is sent over the tenant's budget (DESIGN §5).

Gainsight counts synchronous calls in fixed windows aligned to the minute and the UTC day
(100/minute and 50,000/day by default). The counters live in the store, so the budget survives
restarts and holds across every worker and process sharing it; `Store.take_budget` counts a call
in all windows or in none.

Guard band: our clock and Gainsight's differ a little, and a call lands some time after it is
sent, so a call made just before a boundary may be counted in Gainsight's next window. No call is
started within `guard_seconds` of either edge of a window; as long as skew plus latency stays below
the guard, each of Gainsight's windows sees calls from one of ours only, and never more than
the limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from destination.delivery.store import RATE_WINDOW_RETENTION_SECONDS, RateCounter

MINUTE = 60.0
DAY = 86_400.0


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


def default_windows(per_minute: int = 100, per_day: int = 50_000) -> tuple[RateWindow, ...]:
    """Gainsight's synchronous-call budget (GSD_RATE_LIMIT_PER_MINUTE / _PER_DAY)."""
    return (RateWindow("minute", MINUTE, per_minute), RateWindow("day", DAY, per_day))


class RateGovernor:
    """Grants calls per tenant within every window's limit, counted in the shared store."""

    def __init__(
        self,
        store: RateCounter,
        windows: Sequence[RateWindow] = default_windows(),
        *,
        guard_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not windows:
            raise ValueError("a rate governor needs at least one window")
        self._by_name = {window.name: window for window in windows}
        if len(self._by_name) != len(windows):
            raise ValueError("rate window names must be unique")
        if any(not 0 <= 4 * guard_seconds < w.length_seconds for w in windows):
            raise ValueError("guard_seconds must be at least 0 and under a quarter of each window")
        self.windows = tuple(windows)
        self._store = store
        self._guard = guard_seconds
        self._clock = clock
        self._sleep = sleep

    async def try_acquire(self, tenant_key: str, now: float) -> float | None:
        """Count one call for `tenant_key` at `now`: None if granted, else the time worth trying
        again (the end of the full window, or of the guard band `now` falls in)."""
        guarded_until = self._guard_band_end(now)
        if guarded_until is not None:
            return guarded_until
        asked = time.monotonic()
        full = await self._store.take_budget(
            tenant_key, [(w.name, w.start(now), w.limit) for w in self.windows]
        )
        if full is None:
            # A slow store (a loaded PostgreSQL, a pool queue) can grant so late that the call
            # would land in the next window, over its budget: then it is not made (the count spent).
            return self._too_late(now, now + time.monotonic() - asked)
        return self._by_name[full].end(now) + self._guard

    def _too_late(self, granted_for: float, landed: float) -> float | None:
        """When the call would now start within half a guard of its window's end (or past it),
        the time worth trying again; None while it is still well inside the window."""
        margin = self._guard / 2
        if all(w.start(landed + margin) == w.start(granted_for) for w in self.windows):
            return None
        return (
            max(w.end(granted_for) for w in self.windows if w.start(landed + margin) != w.start(granted_for))
            + self._guard
        )

    async def acquire(self, tenant_key: str) -> None:
        """Wait until a call for `tenant_key` is granted (and counted)."""
        while (retry_at := await self.try_acquire(tenant_key, self._clock())) is not None:
            await self._sleep(max(retry_at - self._clock(), 0.0))

    def _guard_band_end(self, now: float) -> float | None:
        if self._guard == 0:
            return None
        ends = []
        for window in self.windows:
            start, end = window.start(now), window.end(now)
            if now < start + self._guard:
                ends.append(start + self._guard)
            elif now > end - self._guard:
                ends.append(end + self._guard)
        return max(ends, default=None)
