"""Whether a PostgreSQL server can be reached, and why not, in libpq's words (one line).

`check_reachable` is `serve`'s start-up check; `Reach` remembers what the store's pool met on its
last attempt to connect, so that "cannot be reached" can say why during an outage.
"""

from __future__ import annotations

from typing import Any, Self

import psycopg
from psycopg.rows import TupleRow

from destination.delivery.store import StoreUnavailableError

CONNECT_TIMEOUT_SECONDS = 3  # per attempt to reach the server

Conn = psycopg.AsyncConnection[TupleRow]


def cause(exc: BaseException) -> str:
    """A driver error as one line (libpq's messages span lines; they never hold the password)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def check_reachable(url: str) -> None:
    """Connect once and disconnect; StoreUnavailableError names why that failed (for `serve`)."""
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
    except psycopg.Error as exc:
        raise StoreUnavailableError(cause(exc)) from None


class Reach:
    """Why the last attempt to connect failed; None once one succeeded."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def connection_class(self) -> type[Conn]:
        """The pool's connection class, reporting each attempt's outcome here."""
        reach = self

        class Reporting(psycopg.AsyncConnection[TupleRow]):
            @classmethod
            async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
                try:
                    conn = await super().connect(conninfo, **kwargs)
                except psycopg.Error as exc:
                    reach.failure = cause(exc)
                    raise
                reach.failure = None
                return conn

        return Reporting
