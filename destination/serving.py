"""What `serve` does around uvicorn: refuse early with one clear line, say "listening" only when true.

- The store must be usable: a SQLite directory writable by this process (a container's mounted
  volume often is not: the error names the uid that must own it) holding a database; a PostgreSQL
  server that accepts the login (port, password, sslmode): the error names libpq's cause, instead
  of "listening" and a warning a second. Outages after start-up are the store's to ride out.
- The port is bound before the application starts, so "address in use" is one line too.
- "listening" is printed once uvicorn has started the application and accepts connections.
"""

from __future__ import annotations

import errno
import gc
import os
import socket
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from destination.connections import ConnectionLimits, fit_file_limit, limited_protocol
from destination.delivery.store import StoreError
from destination.delivery.stores import check_store_url, redacted, sqlite_path

HTTP_GRACE_SECONDS = 3.0
"""How long open HTTP requests may finish on shutdown; deliveries drain after that (GSD_DRAIN_SECONDS)."""


class ServeError(Exception):
    """A reason `serve` cannot start, as one line for the operator."""


def in_container() -> bool:
    """Docker (/.dockerenv) or Podman (/run/.containerenv)."""
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def uid_hint(directory: Path, container: bool) -> str:
    """Who must be able to write there, and what to run where the fix belongs: in a container the
    path is the container's, and the directory to change is the one mounted there, on the host."""
    uid = os.getuid()
    owner = f"this service runs as uid {uid}, which must own it or be allowed to write to it"
    if container:
        return (
            f"{owner}; {directory} is a path inside this container: on the host, run "
            f"`chown {uid} HOST_DIR` for the directory mounted there (-v HOST_DIR:{directory})"
        )
    return f"{owner} (chown {uid} {directory})"


def _uid_hint(directory: Path) -> str:
    return uid_hint(directory, in_container())


def check_store(store_url: str) -> None:
    """The store GSD_STORE_URL names can be used now; ServeError says why not, in one line."""
    try:
        scheme = check_store_url(store_url)  # refuses memory:// and unknown forms, naming them
    except StoreError as exc:
        raise ServeError(str(exc)) from None
    if scheme == "sqlite":
        try:
            path = sqlite_path(store_url)
        except StoreError as exc:
            raise ServeError(str(exc)) from None
        check_store_writable(store_url)
        _check_sqlite_file(path)
    else:
        from destination.delivery.postgres_reach import check_reachable

        try:
            check_reachable(store_url)
        except StoreError as exc:
            raise ServeError(f"cannot reach the store {redacted(store_url)}: {exc}") from None


def _check_sqlite_file(path: Path) -> None:
    try:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA schema_version").fetchone()
        conn.close()
    except sqlite3.Error as exc:
        raise ServeError(f"the store {path} is not a usable SQLite database: {exc}") from None


def check_store_writable(store_url: str) -> None:
    """For a SQLite store: its directory exists (created if needed) and this process can write there."""
    if not store_url.startswith("sqlite:///"):
        return
    path = Path(store_url.removeprefix("sqlite:///"))
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise ServeError(
            f"cannot create the store directory {directory}: {_uid_hint(directory.parent)}"
        ) from None
    except OSError as exc:
        raise ServeError(f"cannot create the store directory {directory}: {exc.strerror}") from None
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise PermissionError
    except PermissionError:
        raise ServeError(f"the store directory {directory} is not writable: {_uid_hint(directory)}") from None
    except OSError as exc:
        raise ServeError(f"cannot write to the store directory {directory}: {exc.strerror}") from None


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port); uvicorn listens on it once the application has started."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(
                f"cannot listen on {host}:{port}: the address is already in use "
                "(another process holds the port; choose another with --port or GSD_PORT)"
            ) from None
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server that calls `on_ready` once the application is up and the socket listens."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None], gc_young_threshold: int) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._gc_young_threshold = gc_young_threshold

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            tune_gc(self._gc_young_threshold)
            self._on_ready()


def tune_gc(young_threshold: int) -> None:
    """Process-wide collector tuning, applied by `serve` once the application is up (never by
    create_app, so tests run under Python's own): GSD_GC_YOUNG_THRESHOLD, 0 leaving it as is.

    Parsing a batch of events allocates thousands of dicts that die young and hold no cycles: at
    CPython's default (a collection per 700 new containers) the cycle collector cost about a tenth
    of a 100-event transformer request; collections stay on, just less often. Start-up objects
    (modules, models, routes) never die: frozen, they stay out of the full passes, which would
    otherwise stall requests for tens of ms.
    """
    if young_threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)
    gc.collect()
    gc.freeze()


def run_server(
    application: Any,
    sock: socket.socket,
    *,
    access_log: bool,
    log_level: str,
    on_ready: Callable[[], None],
    limits: ConnectionLimits,
    keep_alive_seconds: int,
    gc_young_threshold: int,
) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 when the application failed to start."""
    config = uvicorn.Config(
        application,
        http=limited_protocol(fit_file_limit(limits)),
        timeout_keep_alive=keep_alive_seconds,
        access_log=access_log,
        log_level=log_level,
        log_config=None,  # logging is configured by destination.logs: one format for every line
        timeout_graceful_shutdown=int(HTTP_GRACE_SECONDS),
        server_header=False,
    )
    server = _Server(config, on_ready, gc_young_threshold)
    server.run(sockets=[sock])
    return 0 if server.started else 1
