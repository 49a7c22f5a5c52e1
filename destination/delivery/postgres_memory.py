"""What the PostgreSQL store keeps for every replica besides the queue: rate windows, the Gsids
and delivered states the executor remembers, and holds as advisory locks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from destination.delivery.holds import HoldKind, hold_keys, lock_text
from destination.delivery.postgres_connections import (
    PostgresConnections,
)
from destination.delivery.postgres_reach import cause
from destination.delivery.store import (
    BudgetWindow,
    LastCompany,
    StateKind,
    StoreClosedError,
    StoreUnavailableError,
)


class PostgresMemory(PostgresConnections):
    """RateCounter.take_budget and DeliveryMemory of the PostgreSQL store; see store.py."""

    async def take_budget(
        self, tenant_key: str, windows: Sequence[BudgetWindow], calls: int = 1
    ) -> str | None:
        if calls < 1:
            raise ValueError("take_budget counts at least one call")
        for name, _, limit in windows:
            if calls > limit:
                return name
        params = {
            "calls": calls,
            "tenant_key": tenant_key,
            "names": [name for name, _, _ in windows],
            "starts": [start for _, start, _ in windows],
            "caps": [limit for _, _, limit in windows],
        }
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["take_budget"], params)).fetchall()
            # One name may come twice (a call near an edge is counted in both windows): by start too.
            counted = {(name, start) for name, start in rows}
            full = next((name for name, start, _ in windows if (name, start) not in counted), None)
            if full is not None:
                raise psycopg.Rollback()  # counts nothing when any window is full
        return full

    async def company_gsids(self, scope: str, names: Sequence[str]) -> dict[str, str]:
        if not names:
            return {}
        async with self._tx() as conn:
            rows = await (
                await conn.execute(self._q["company_gsids"], {"scope": scope, "names": list(names)})
            ).fetchall()
        return {name: gsid for name, gsid in rows}

    async def remember_gsids(self, scope: str, gsids: Mapping[str, str], now: float) -> None:
        if gsids:
            params = {"scope": scope, "names": list(gsids), "gsids": list(gsids.values()), "now": now}
            async with self._tx() as conn:
                await conn.execute(self._q["remember_gsids"], params)

    async def forget_gsids(self, scope: str, names: Sequence[str]) -> None:
        if names:
            async with self._tx() as conn:
                await conn.execute(self._q["forget_gsids"], {"scope": scope, "names": list(names)})

    async def last_companies(self, destination_id: str, persons: Sequence[str]) -> dict[str, str]:
        if not persons:
            return {}
        params = {"destination_id": destination_id, "persons": list(persons)}
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["last_companies"], params)).fetchall()
        return {person: gsid for person, gsid in rows}

    async def remember_last_companies(
        self, destination_id: str, links: Mapping[str, LastCompany], now: float
    ) -> None:
        if links:
            params = {
                "destination_id": destination_id,
                "persons": list(links),
                "gsids": [link.gsid for link in links.values()],
                "event_ids": [link.event_id for link in links.values()],
                "now": now,
            }
            async with self._tx() as conn:
                await conn.execute(self._q["remember_last_companies"], params)

    async def delivered_states(
        self, scope: str, kind: StateKind, keys: Sequence[str], since: float
    ) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        params = {"scope": scope, "kind": kind, "keys": list(keys), "since": since}
        async with self._tx() as conn:
            rows = await (await conn.execute(self._q["delivered_states"], params)).fetchall()
        return {key: state for key, state in rows}

    async def remember_states(
        self, scope: str, kind: StateKind, states: Mapping[str, Mapping[str, Any]], now: float
    ) -> None:
        if states:
            params = {
                "scope": scope,
                "kind": kind,
                "keys": list(states),
                "states": [Jsonb(dict(state)) for state in states.values()],
                "now": now,
            }
            async with self._tx() as conn:
                await conn.execute(self._q["remember_states"], params)

    async def forget_states(self, scope: str, kind: StateKind, keys: Sequence[str]) -> None:
        if keys:
            async with self._tx() as conn:
                params = {"scope": scope, "kind": kind, "keys": list(keys)}
                await conn.execute(self._q["forget_states"], params)

    @asynccontextmanager
    async def hold(self, scope: str, kind: HoldKind, keys: Sequence[str]) -> AsyncIterator[None]:
        """Session advisory locks on a connection of the holder's own: every replica waits for
        them, and they go with the connection if the holder dies."""
        held = hold_keys(scope, kind, keys)
        if not held:
            yield
            return
        async with self._holds.hold(
            scope, kind, keys
        ):  # one waiter per key per process, not a connection each
            if self._closed:
                raise StoreClosedError("the store is closed")
            try:
                if not self._ready:
                    await self._open()
                conn = await self._hold_pool.getconn(self._wait_seconds())
            except PoolTimeout:
                if self._reach.failure is not None:
                    raise self._unreachable() from None
                raise StoreUnavailableError(
                    "no PostgreSQL connection free for a hold (every hold connection is in use)"
                ) from None
            try:
                for key in held:
                    await conn.execute(self._q["hold"], {"key": lock_text(key)})
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                await self._hold_pool.putconn(conn)
                raise StoreUnavailableError("the PostgreSQL store failed", cause(exc)) from exc
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):  # broken: the server dropped its locks
                    await conn.execute(self._q["release_holds"])
                await self._hold_pool.putconn(conn)
