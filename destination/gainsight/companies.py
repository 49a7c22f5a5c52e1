"""Resolve a group's Company to its Gsid: search, then insert or update (DESIGN §3.3, §6).

Group events for one company are serialised, so concurrent events never both see "not found"
and insert it twice; a known Gsid is remembered, so later events skip the search.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from destination.errors import GainsightError
from destination.gainsight.client import GainsightClient
from destination.gainsight.outcomes import Answer, classify
from destination.gainsight.plan import GroupPlan

CompanyKey = tuple[str, str]

# Gainsight's documented "nothing matches" answer to a query (some tenants answer 200 + []).
_NO_MATCH_CODES = frozenset({"GSOBJ_1011"})


def records_of(answer: Answer) -> list[dict[str, Any]]:
    """`data.records`, or `data` itself when a tenant answers with a bare list."""
    body = answer.body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        data = data.get("records")
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    return []


def first_gsid(answer: Answer) -> str | None:
    for record in records_of(answer):
        gsid = record.get("Gsid")
        if isinstance(gsid, str) and gsid:
            return gsid
    return None


def _is_no_match(answer: Answer) -> bool:
    return classify(answer) == "aborted" and answer.error_code in _NO_MATCH_CODES


class CompanyResolver:
    def __init__(self, client: GainsightClient, max_remembered: int = 50_000) -> None:
        self._client = client
        self._gsids: OrderedDict[CompanyKey, str] = OrderedDict()
        self._max = max_remembered
        self._locks: dict[CompanyKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def _serialised(self, key: CompanyKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def remembered(self, domain: str, name: str) -> str | None:
        return self._gsids.get((domain, name))

    def _remember(self, key: CompanyKey, gsid: str) -> None:
        self._gsids[key] = gsid
        self._gsids.move_to_end(key)
        while len(self._gsids) > self._max:
            self._gsids.popitem(last=False)

    async def resolve(self, plan: GroupPlan) -> str:
        """Write the plan's Company (insert or update) and return its Gsid."""
        key = (plan.domain, plan.company_name)
        async with self._serialised(key):
            known = self._gsids.get(key)
            if known is not None:
                answer = await self._client.send(plan.update_request())
                if classify(answer) == "delivered":
                    return first_gsid(answer) or known
                if not _is_no_match(answer):
                    raise self._client.failure(answer, "company update")
                # Deleted in Gainsight since we saw it: forget it and resolve afresh.
                self._gsids.pop(key, None)
            gsid = await self._search_and_write(plan)
            self._remember(key, gsid)
            return gsid

    async def _search_and_write(self, plan: GroupPlan) -> str:
        found = await self._client.send(plan.search_request())
        if classify(found) != "delivered" and not _is_no_match(found):
            raise self._client.failure(found, "company search")
        existing = first_gsid(found) if classify(found) == "delivered" else None
        if existing is None and records_of(found):
            existing = ""  # found, but the tenant did not return Gsid: update still works by Name
        if existing is None:
            written = await self._client.execute(plan.insert_request(), "company insert")
        else:
            written = await self._client.execute(plan.update_request(), "company update")
        gsid = first_gsid(written) or existing
        if not gsid:
            raise GainsightError(
                "company write succeeded but Gainsight returned no Gsid",
                outcome="retryable",
                http_status=written.status,
                response=written.body,
            )
        return gsid
