"""Resolve a group's Company to its Gsid: search, then insert or update (DESIGN §3.3, §6).

Group events for one company are serialised, so concurrent events never both see "not found"
and insert it twice; a known Gsid is remembered, so later events skip the search.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from destination.errors import GainsightError
from destination.gainsight.client import GainsightClient
from destination.gainsight.endpoints import MAX_RECORDS_PER_CALL
from destination.gainsight.outcomes import Answer, classify
from destination.gainsight.plan import GroupPlan

CompanyKey = tuple[str, str]
Hold = Callable[[str, Sequence[str]], AbstractAsyncContextManager[None]]

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


def _matched_nothing(answer: Answer) -> bool:
    """An update that succeeded but changed no row (tenants that answer 200 with count 0)."""
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    return isinstance(data, dict) and data.get("count") == 0 and not records_of(answer)


def _chunks(names: list[str]) -> list[list[str]]:
    return [names[i : i + MAX_RECORDS_PER_CALL] for i in range(0, len(names), MAX_RECORDS_PER_CALL)]


def _existing_by_name(answer: Answer) -> dict[str, str]:
    """Name -> Gsid of the companies a query found (the first, if a name is there twice)."""
    found: dict[str, str] = {}
    for record in records_of(answer):
        name, gsid = record.get("Name"), record.get("Gsid")
        if isinstance(name, str) and name not in found:
            found[name] = gsid if isinstance(gsid, str) else ""
    return found


def _gsids_by_name(names: list[str], answer: Answer, fallback: dict[str, str]) -> dict[str, str]:
    """Gsids of written records: by Name when echoed, else by position (input order)."""
    records = records_of(answer)
    by_name = {
        r["Name"]: r["Gsid"]
        for r in records
        if isinstance(r.get("Name"), str) and isinstance(r.get("Gsid"), str)
    }
    result = {}
    for i, name in enumerate(names):
        gsid = by_name.get(name)
        if gsid is None and i < len(records) and isinstance(records[i].get("Gsid"), str):
            gsid = records[i]["Gsid"]
        result[name] = gsid or fallback.get(name, "")
    return result


class CompanyResolver:
    def __init__(
        self,
        client: GainsightClient,
        max_remembered: int = 50_000,
        hold: Hold | None = None,
    ) -> None:
        self._client = client
        # Shared with other processes (the store's hold_companies): replicas never both create
        # a company. The local locks below still order this process's own writers.
        self._hold = hold
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

    def forget(self, domain: str, name: str) -> None:
        self._gsids.pop((domain, name), None)

    def _remember(self, key: CompanyKey, gsid: str) -> None:
        self._gsids[key] = gsid
        self._gsids.move_to_end(key)
        while len(self._gsids) > self._max:
            self._gsids.popitem(last=False)

    def _held(self, domain: str, names: Sequence[str]) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext() if self._hold is None else self._hold(domain, names)

    async def resolve(self, plan: GroupPlan) -> str:
        """Write the plan's Company (insert or update) and return its Gsid."""
        async with (
            self._serialised((plan.domain, plan.company_name)),
            self._held(plan.domain, [plan.company_name]),
        ):
            return await self._resolve_locked(plan)

    async def resolve_many(self, plans: Sequence[GroupPlan]) -> list[str | GainsightError]:
        """Each plan's Gsid, or the error that stopped it; the plans share one domain and key.

        Plans naming one company are merged into one record (field-wise, later events win), and
        companies share calls of up to 50 records: one search for those not yet known, then one
        insert and one update. The result in Gainsight is that of writing them one by one. When a
        batched call is refused (4xx), its companies are written event by event, so the error
        lands only on the events that cause it.
        """
        merged: dict[str, dict[str, Any]] = {}
        for plan in plans:
            merged.setdefault(plan.company_name, {}).update(plan.company)
        template = plans[0]
        async with contextlib.AsyncExitStack() as locks:
            for name in sorted(merged):  # one order everywhere: no deadlock between requests
                await locks.enter_async_context(self._serialised((template.domain, name)))
            await locks.enter_async_context(self._held(template.domain, sorted(merged)))
            written, failed = await self._write_batched(template, merged)
            results: list[str | GainsightError] = []
            for plan in plans:
                name = plan.company_name
                error = failed.get(name)
                if name in written:
                    results.append(written[name])
                elif error is not None and error.outcome != "aborted":
                    results.append(error)
                else:
                    results.append(await self._resolve_or_error(plan))
            return results

    async def _resolve_or_error(self, plan: GroupPlan) -> str | GainsightError:
        try:
            return await self._resolve_locked(plan)
        except GainsightError as exc:
            return exc

    async def _write_batched(
        self, template: GroupPlan, merged: dict[str, dict[str, Any]]
    ) -> tuple[dict[str, str], dict[str, GainsightError]]:
        domain = template.domain
        written: dict[str, str] = {}
        failed: dict[str, GainsightError] = {}
        known = {n: g for n in merged if (g := self._gsids.get((domain, n))) is not None}
        unknown = [n for n in merged if n not in known]
        for names in _chunks(list(known)):
            answer = await self._client.send(template.update_request([merged[n] for n in names]))
            if classify(answer) == "delivered" and not _matched_nothing(answer):
                written.update(_gsids_by_name(names, answer, known))
            elif classify(answer) == "delivered" or _is_no_match(
                answer
            ):  # one of them was deleted meanwhile: look them all up again
                unknown.extend(names)
            else:
                failed.update(dict.fromkeys(names, self._client.failure(answer, "company update")))
        for names in _chunks(unknown):
            found = await self._client.send(template.search_many_request(names))
            if classify(found) != "delivered" and not _is_no_match(found):
                failed.update(dict.fromkeys(names, self._client.failure(found, "company search")))
                continue
            existing = _existing_by_name(found) if classify(found) == "delivered" else {}
            for step, group in (
                ("company insert", [n for n in names if n not in existing]),
                ("company update", [n for n in names if n in existing]),
            ):
                if not group:
                    continue
                records = [merged[n] for n in group]
                insert = step == "company insert"
                request = template.insert_request(records) if insert else template.update_request(records)
                answer = await self._client.send(request)
                if classify(answer) == "delivered":
                    written.update(_gsids_by_name(group, answer, existing))
                else:
                    failed.update(dict.fromkeys(group, self._client.failure(answer, step)))
        for name in [n for n, gsid in written.items() if not gsid]:
            del written[name]  # no Gsid came back: resolve it on its own
        for name, gsid in written.items():
            self._remember((domain, name), gsid)
        return written, failed

    async def _resolve_locked(self, plan: GroupPlan) -> str:
        key = (plan.domain, plan.company_name)
        known = self._gsids.get(key)
        if known is not None:
            answer = await self._client.send(plan.update_request())
            if classify(answer) == "delivered" and not _matched_nothing(answer):
                return first_gsid(answer) or known
            if classify(answer) != "delivered" and not _is_no_match(answer):
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
