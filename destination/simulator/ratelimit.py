"""Gainsight's fixed-window budget (reference §2) and an independent audit of it.

A window's index is floor(now / length), so windows start on the boundary: a minute is
10:00:00 to 10:00:59 and a day is a UTC day (the epoch is UTC midnight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Window:
    """One fixed window: its length, its limit, and the calls counted in the current one."""

    length: float
    limit: int
    index: int = -1
    count: int = 0

    def _roll(self, now: float) -> None:
        index = math.floor(now / self.length)
        if index != self.index:
            self.index = index
            self.count = 0

    def remaining(self, now: float) -> int:
        self._roll(now)
        return self.limit - self.count

    def add(self, now: float) -> None:
        self._roll(now)
        self.count += 1

    def seconds_to_end(self, now: float) -> float:
        return (math.floor(now / self.length) + 1) * self.length - now


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_after: int | None = None  # whole seconds until every exhausted window has rolled over


@dataclass
class RateLimiter:
    """Per-minute and per-day windows for the simulator's one tenant.

    `count_rejected`: a rejected call still uses up budget in both windows (Gainsight's behaviour
    here is not documented; counting is the cautious assumption for a client's budgeting).
    """

    per_minute: int
    per_day: int
    minute_seconds: float = 60.0
    day_seconds: float = 86_400.0
    count_rejected: bool = True
    windows: list[Window] = field(init=False)

    def __post_init__(self) -> None:
        self.windows = [
            Window(self.minute_seconds, self.per_minute),
            Window(self.day_seconds, self.per_day),
        ]

    def admit(self, now: float) -> Admission:
        if self.count_rejected:
            for window in self.windows:
                window.add(now)
            exhausted = [w for w in self.windows if w.remaining(now) < 0]
        else:
            exhausted = [w for w in self.windows if w.remaining(now) <= 0]
            if not exhausted:
                for window in self.windows:
                    window.add(now)
        if not exhausted:
            return Admission(True)
        wait = max(w.seconds_to_end(now) for w in exhausted)
        return Admission(False, max(1, math.ceil(wait)))

    def reset(self) -> None:
        self.__post_init__()


def timeline_limiter(sync: RateLimiter, per_minute: int, counts_toward_day: bool) -> RateLimiter:
    """Timeline's single-activity saves (reference §8): a minute window of their own and, when
    they count toward it ([U]), the sync limiter's own day window, shared."""
    limiter = RateLimiter(
        per_minute, sync.per_day, sync.minute_seconds, sync.day_seconds, sync.count_rejected
    )
    limiter.windows = [limiter.windows[0], *([sync.windows[1]] if counts_toward_day else [])]
    return limiter


@dataclass
class BudgetAudit:
    """Counts the calls the limiters let through, per window, without trusting the limiters.

    `over_budget` must stay 0: it is the number of admitted calls beyond a window's limit. A
    window shared by two limiters (the day Timeline shares with sync calls) is audited as one.
    """

    limiter: RateLimiter
    over_budget: int = 0
    _admitted: dict[tuple[int, int], int] = field(default_factory=dict)

    def admitted(self, now: float, limiter: RateLimiter | None = None) -> None:
        """One call admitted at `now` by `limiter` (default: the sync limiter)."""
        over = False
        for window in (limiter or self.limiter).windows:
            key = (id(window), math.floor(now / window.length))
            for old in [k for k in self._admitted if k[0] == key[0] and k != key]:
                del self._admitted[old]
            self._admitted[key] = self._admitted.get(key, 0) + 1
            over = over or self._admitted[key] > window.limit
        if over:
            self.over_budget += 1

    def reset(self) -> None:
        self.over_budget = 0
        self._admitted.clear()
