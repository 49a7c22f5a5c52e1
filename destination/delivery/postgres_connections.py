"""Connections to the PostgreSQL store: its pools, the schema migrated at first use, transactions
that turn an unreachable server into StoreUnavailableError, and person locks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from destination import jsonutil
from destination.delivery import migrations, sqlfile
from destination.delivery.holds import Holds
from destination.delivery.postgres_reach import CONNECT_TIMEOUT_SECONDS, Reach, cause
from destination.delivery.store import (
    StoreClosedError,
    StoreError,
    StoreUnavailableError,
)
from destination.settings import default

MIGRATIONS = "postgres_migrations.sql"
DEFAULT_POOL_SIZE: int = default("store_pool_size")
WAIT_SECONDS = 5.0  # longest wait for a pooled connection before answering "unavailable"
DOWN_WAIT_SECONDS = 2.0  # the same while the last attempt to connect failed (a known outage)

Conn = psycopg.AsyncConnection[TupleRow]


def queries() -> dict[str, str]:
    return sqlfile.load("postgres.sql")


async def _configure(conn: Conn) -> None:
    # orjson both ways for jsonb (progress, responses, requests).
    set_json_dumps(jsonutil.dumps, conn)
    set_json_loads(jsonutil.loads, conn)
    await conn.set_autocommit(False)


def jsonb_or_none(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def people_lists(people: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    return {"destinations": [d for d, _ in people], "people": [p for _, p in people]}


class PostgresConnections:
    """The pools and transactions every part of PostgresStore works through."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        hold_pool_size: int | None = None,
    ) -> None:
        """`hold_pool_size`: connections for holds (default `pool_size`); the service gives as many
        as it can have holds at once (app.py), since a hold that waits for one fails its batch."""
        if pool_size < 1 or (hold_pool_size is not None and hold_pool_size < 1):
            raise ValueError("the pool needs at least one connection")
        self._q = queries()
        self._reach = Reach()
        self._pool = AsyncConnectionPool(
            url,
            connection_class=self._reach.connection_class(),
            min_size=min(2, pool_size),
            max_size=pool_size,
            open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
            configure=_configure,
            # A connection that died with the server is found out (and replaced) before use.
            check=AsyncConnectionPool.check_connection,
            timeout=WAIT_SECONDS,
            reconnect_timeout=3600.0,
            name="gsd-store",
        )
        # Holds (companies, people) keep a connection for the length of a few Gainsight calls: a
        # pool of their own, so they never leave ingest or the rate windows waiting for a connection.
        self._hold_pool = AsyncConnectionPool(
            url,
            connection_class=self._reach.connection_class(),
            min_size=0,
            max_size=hold_pool_size or pool_size,
            open=False,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "autocommit": True},
            check=AsyncConnectionPool.check_connection,
            timeout=WAIT_SECONDS,
            name="gsd-store-holds",
        )
        self._ready = False
        self._closed = False
        self._opening = asyncio.Lock()
        self._holds = Holds()

    async def _open(self) -> None:
        """Open the pool and migrate the schema, once; retried by the next call if it failed."""
        async with self._opening:
            if self._ready:
                return
            if self._pool.closed:
                await self._pool.open(wait=False)
                await self._hold_pool.open(wait=False)
            async with self._pool.connection(self._wait_seconds()) as conn:
                await self._migrate(conn)
            self._ready = True

    async def _migrate(self, conn: Conn) -> None:
        steps = migrations.steps(MIGRATIONS)
        async with conn.transaction():
            await conn.execute(self._q["migration_lock"])
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = await (await conn.execute(self._q["schema_version"])).fetchone()
            if row is None:
                await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            version = 0 if row is None else int(row[0])
            for step in migrations.pending(steps, version):
                await conn.execute(step.sql.encode())  # no parameters: several statements at once
                await conn.execute("UPDATE schema_version SET version = %s", (step.version,))

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """A connection in a transaction, committed when the block ends. Errors that mean the server
        is out of reach become StoreUnavailableError."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        try:
            if not self._ready:
                try:
                    await self._open()
                except StoreError as exc:  # e.g. a schema newer than this build: say so, never a 500
                    if isinstance(exc, StoreUnavailableError):
                        raise
                    raise StoreUnavailableError(str(exc)) from exc
            async with self._pool.connection(self._wait_seconds()) as conn, conn.transaction():
                yield conn
        except PoolClosed:
            raise StoreClosedError("the store is closed") from None
        except PoolTimeout:
            raise self._unreachable() from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailableError("the PostgreSQL store failed", cause(exc)) from exc

    def _wait_seconds(self) -> float:
        return WAIT_SECONDS if self._reach.failure is None else DOWN_WAIT_SECONDS

    def _unreachable(self) -> StoreUnavailableError:
        return StoreUnavailableError("the PostgreSQL store cannot be reached", self._reach.failure)

    async def _lock_people(self, conn: Conn, people: Sequence[tuple[str, str]]) -> None:
        if people:
            await conn.execute(self._q["lock_people"], people_lists(people))

    async def close(self) -> None:
        self._closed = True
        for pool in (self._hold_pool, self._pool):
            if not pool.closed:
                await pool.close()
