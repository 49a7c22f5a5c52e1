"""Writing usage rows to Gainsight (DESIGN §3.7): the calls of one flush, or of one refused row's retry.

For the rows given (each with its count now in the store):

  1. the rows Gainsight is not known to hold → one `IN` query (a page per 5,000 answers); the
     rows it answers become known;
  2. rows still unknown → inserts, known ones → updates (`keys=` company, date, metric), up to
     50 rows a call, each with its absolute count; a row written is recorded with the count sent
     (a count raised meanwhile stays due);
  3. a 4xx refusing a call of several rows → the call is split in halves, and again, until only
     the refused row remains: that one is `refused` (the caller dead-letters it); the others land
     (an update of one row that matches nothing, the row deleted in Gainsight, inserts it anew);
     a 429, 5xx or timeout (or a spent budget, OverBudget) stops the writes: what is left is
     written by the next flush, and an insert whose fate is unknown is asked for again first.

Every call goes through the client's call slots and the rate governor's gate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from destination.delivery.usage_store import UsageCounts, UsageKey, UsageRow
from destination.errors import OverBudget
from destination.gainsight.client import Call, GainsightClient
from destination.gainsight.companies import is_no_match
from destination.gainsight.endpoints import MAX_RECORDS_PER_CALL
from destination.gainsight.jobs import Batch, Fate, failed
from destination.gainsight.outcomes import classify
from destination.gainsight.requests import Request
from destination.gainsight.usage_rows import (
    QUERY_LIMIT,
    UsageTarget,
    answer_records,
    found_keys,
    usage_insert,
    usage_search,
    usage_update,
)

MakeRequest = Callable[[str, UsageTarget, Sequence[tuple[UsageKey, int]]], Request]


@dataclass(slots=True)
class Written:
    """What one write of rows did."""

    rows: int = 0  # rows written
    calls: int = 0
    refused: list[tuple[UsageRow, Call]] = field(default_factory=list)  # alone, with the answer
    stopped: Fate | None = None  # a failure to retry later (throttled, retryable)
    last_call: Call | None = None  # the last call that wrote rows
    over_budget: OverBudget | None = None  # the budget ran out: nothing more was sent


class _Stop(Exception):
    def __init__(self, fate: Fate) -> None:
        self.fate = fate


class UsageWriter:
    def __init__(self, client: GainsightClient, store: UsageCounts, clock: Callable[[], float]) -> None:
        self._client = client
        self._store = store
        self._clock = clock

    async def write(self, batch: Batch, target: UsageTarget, rows: Sequence[UsageRow]) -> Written:
        """Write `rows`. A spent budget ends the write early (`over_budget`), keeping what it did
        and found until then: the rows refused so far are not split again by a later flush."""
        written = Written()
        try:
            unknown = [r for r in rows if not r.known]
            found = await self._search(batch, target, [r.key for r in unknown], written)
            inserts = [r for r in unknown if r.key not in found]
            updates = [r for r in rows if r.known or r.key in found]
            for make, group in ((usage_insert, inserts), (usage_update, updates)):
                for start in range(0, len(group), MAX_RECORDS_PER_CALL):
                    await self._send(
                        batch, target, make, group[start : start + MAX_RECORDS_PER_CALL], written
                    )
        except _Stop as stop:
            written.stopped = stop.fate
        except OverBudget as spent:
            written.over_budget = spent
        return written

    async def _search(
        self, batch: Batch, target: UsageTarget, keys: list[UsageKey], written: Written
    ) -> set[UsageKey]:
        wanted, found, offset = set(keys), set[UsageKey](), 0
        while wanted:
            call = await self._client.call(usage_search(batch.scope, target, keys, offset), batch.credentials)
            written.calls += 1
            if is_no_match(call.answer):  # "no data found" answered as an error (reference §4.1)
                break
            if classify(call.answer) != "delivered":
                raise _Stop(failed(self._client, call))
            records = answer_records(call.answer.body)
            found |= found_keys(target, records) & wanted
            if len(records) < QUERY_LIMIT:
                break
            offset += QUERY_LIMIT
        if found:
            await self._store.usage_found(batch.destination, sorted(found, key=_order))
        return found

    async def _send(
        self, batch: Batch, target: UsageTarget, make: MakeRequest, rows: Sequence[UsageRow], written: Written
    ) -> None:
        counts = [(r.key, r.count) for r in rows]
        call = await self._client.call(make(batch.scope, target, counts), batch.credentials)
        written.calls += 1
        outcome = classify(call.answer)
        if outcome == "delivered":
            await self._store.usage_written(batch.destination, counts, self._clock())
            written.rows += len(rows)
            written.last_call = call
        elif outcome != "aborted":
            raise _Stop(failed(self._client, call))
        elif len(rows) == 1 and make is usage_update and is_no_match(call.answer):
            await self._send(batch, target, usage_insert, rows, written)  # gone from Gainsight: anew
        elif len(rows) == 1:
            written.refused.append((rows[0], call))
        else:  # only the refused row must fail: halve until it stands alone
            half = len(rows) // 2
            await self._send(batch, target, make, rows[:half], written)
            await self._send(batch, target, make, rows[half:], written)


def _order(key: UsageKey) -> tuple[str, str, str]:
    return (key.day, key.company, key.metric)
