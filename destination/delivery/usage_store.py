"""Usage counts in the store (DESIGN §3.7): what every backend keeps for them, shared by replicas.

A count is kept per (destination, company Gsid, UTC day, metric) and raised by one per messageId:
`count_usage` records the messageId and adds one in ONE transaction, and only when the messageId
was not counted before. So a crash before the event is finished (the event is claimed again and
counted again) adds nothing the second time, and a crash after it loses nothing.

Each row also keeps the count last written to Gainsight (`written`), whether Gainsight is known to
hold the row (`known`: written by us, or found by a query), and whether it is `held` out of
flushes (Gainsight refused it: its dead letter's replay writes it again). A row is to be written
while `count != written`. Unattributed events (no company) are counted under the company "" and
never written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

UNATTRIBUTED = ""
"""The company under which events with no company are counted (never written to Gainsight)."""

USAGE_DAYS_KEPT = 35
"""A row is kept this many days after its UTC day; an event whose day is older is not counted."""

DAY_SECONDS = 86_400.0

USAGE_COUNTED_RETENTION_SECONDS = (USAGE_DAYS_KEPT + 2) * DAY_SECONDS
"""A counted messageId is remembered past its row's days: an event replayed (a dead letter) or
retried after that is of a day no longer counted, so it can never be counted twice."""


@dataclass(frozen=True, slots=True)
class UsageKey:
    company: str  # the company's Gsid (UNATTRIBUTED: none)
    day: str  # the UTC day, YYYY-MM-DD
    metric: str  # the track event's name, as received


@dataclass(frozen=True, slots=True)
class UsageRow:
    key: UsageKey
    count: int
    written: int  # the count last written to Gainsight (0: never)
    known: bool  # Gainsight holds the row (we wrote it, or a query found it)
    held: bool  # refused by Gainsight: left out of flushes until its dead letter is replayed
    written_at: float | None  # when it was last written

    @property
    def due(self) -> bool:
        return self.count != self.written and not self.held and self.key.company != UNATTRIBUTED


class UsageCounts(Protocol):
    """The usage part of every store (memory, SQLite, PostgreSQL)."""

    async def count_usage(self, destination_id: str, message_id: str, key: UsageKey, now: float) -> bool:
        """Add one to the key's count unless `message_id` (of the destination) was counted before,
        atomically. True: counted now; False: counted before (nothing changed)."""
        ...

    async def usage_due(self, destination_id: str, limit: int) -> list[UsageRow]:
        """Rows whose count differs from what was last written (not held, attributed), oldest day first."""
        ...

    async def usage_rows(self, destination_id: str, keys: Sequence[UsageKey]) -> list[UsageRow]:
        """The rows of these keys that exist."""
        ...

    async def usage_of_day(self, destination_id: str, day: str) -> list[UsageRow]:
        """Every row of one UTC day (unattributed included), by metric then company."""
        ...

    async def usage_written(
        self, destination_id: str, written: Sequence[tuple[UsageKey, int]], now: float
    ) -> None:
        """These counts are now in Gainsight: `written` set to each, the row known and no longer held."""
        ...

    async def usage_found(self, destination_id: str, keys: Sequence[UsageKey]) -> None:
        """A query found these rows in Gainsight: known (updated, not inserted, from now on)."""
        ...

    async def usage_held(self, destination_id: str, keys: Sequence[UsageKey], held: bool) -> None:
        """Hold rows out of flushes (Gainsight refused them), or release them."""
        ...

    async def last_usage_write(self, destination_id: str) -> float | None:
        """When a count of the destination was last written (None: never)."""
        ...


def utc_day(epoch_seconds: float) -> str:
    """YYYY-MM-DD of a UTC instant."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_seconds))


def oldest_day_kept(now: float) -> str:
    """Rows of days before this one are pruned; events of such days are not counted."""
    return utc_day(now - USAGE_DAYS_KEPT * DAY_SECONDS)
