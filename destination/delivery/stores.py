"""open_store(url): the store a GSD_STORE_URL names.

sqlite:///./data/gsd.sqlite3   a file, relative to the working directory (parent created)
sqlite:////var/lib/gsd/q.db    a file, absolute path
postgresql://user:pw@host/db   a PostgreSQL database, shared by replicas (DESIGN §7); libpq's URL
                               (query parameters such as sslmode=require pass through)

A backend's module (and its driver) is imported only when its URL is used. The in-memory store
(memory.py) is a test double that tests hand to `create_app(store=…)`: no URL names it, since
nothing in it would survive a restart.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from destination.delivery.store import DEDUPE_WINDOW_SECONDS, Store, UnsupportedStoreURLError
from destination.settings import default

DEFAULT_STORE_URL: str = default("store_url")
DEFAULT_POOL_SIZE: int = default("store_pool_size")


def open_store(
    url: str = DEFAULT_STORE_URL,
    *,
    dedupe_window_seconds: float = DEDUPE_WINDOW_SECONDS,
    clock: Callable[[], float] = time.time,
    pool_size: int = DEFAULT_POOL_SIZE,
    hold_pool_size: int | None = None,
) -> Store:
    """The store `url` names. `pool_size`: connections per process, and `hold_pool_size` more
    for holds (PostgreSQL only)."""
    scheme = check_store_url(url)
    if scheme == "sqlite":
        from destination.delivery.sqlite import SQLiteStore

        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(path, dedupe_window_seconds=dedupe_window_seconds, clock=clock)
    from destination.delivery.postgres import PostgresStore

    return PostgresStore(
        url,
        dedupe_window_seconds=dedupe_window_seconds,
        clock=clock,
        pool_size=pool_size,
        hold_pool_size=hold_pool_size,
    )


def check_store_url(url: str) -> str:
    """The URL's scheme (sqlite or postgresql), or UnsupportedStoreURLError saying what to write."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        return scheme
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if scheme == "memory":
        raise UnsupportedStoreURLError(
            "store URL memory:// keeps nothing across a restart, so the service refuses it (it is "
            "for tests only); use sqlite:///./data/gsd.sqlite3 (the default) or postgresql://…"
        )
    raise UnsupportedStoreURLError(
        f"unknown store URL {redacted(url)!r}; expected sqlite:///relative/path, "
        "sqlite:////absolute/path or postgresql://user:password@host/database"
    )


def sqlite_path(url: str) -> Path:
    """The file a sqlite:/// URL names; UnsupportedStoreURLError for any other form."""
    parts = urlsplit(url)
    if parts.netloc or parts.query or parts.fragment:
        raise UnsupportedStoreURLError(
            f"store URL {url!r}: write sqlite:///relative/path or sqlite:////absolute/path"
        )
    relative_or_absolute = parts.path[1:]  # sqlite:///x -> "x"; sqlite:////x -> "/x"
    if not relative_or_absolute:
        raise UnsupportedStoreURLError(f"store URL {url!r} names no file")
    return Path(relative_or_absolute)


_PASSWORD_PARAMETER = re.compile(r"(?i)(?<=[?&]password=)[^&#]*")


def redacted(url: str) -> str:
    """The URL without its password (user info, or libpq's `password=` parameter), for messages."""
    url = _PASSWORD_PARAMETER.sub("***", url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
