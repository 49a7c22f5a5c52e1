"""A PostgreSQL server for the tests: an existing one, or a throwaway cluster on loopback.

GSD_TEST_POSTGRES_URL=postgresql://user:pw@host/db   use that server (each test gets its own schema)
otherwise                                            initdb + pg_ctl a cluster in a temp directory,
                                                     as the `postgres` system user when run as root
Neither possible: PostgreSQL tests are skipped, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from tests import ci
from tests.e2e.servers import free_port

URL_ENV = "GSD_TEST_POSTGRES_URL"


class Unavailable(Exception):
    """No PostgreSQL server can be had here; the message says why."""


def missing(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where PostgreSQL must be there."""
    ci.unavailable(f"PostgreSQL unavailable: {reason} (set {URL_ENV}, or install PostgreSQL's server)")


def _bin_dir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise Unavailable("no initdb on PATH or under /usr/lib/postgresql/*/bin")
    return Path(versions[-1]).parent


class Cluster:
    """A throwaway cluster: trust auth, TCP on 127.0.0.1 only, no fsync (tests need no safety against
    power loss). `stop`/`start` let a test take the server away and bring it back."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.user = None if os.geteuid() != 0 else "postgres"
        if self.user is not None:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                raise Unavailable(
                    "running as root and there is no `postgres` user to run the server"
                ) from None
        self.dir = Path(tempfile.mkdtemp(prefix="gsd-pg-"))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.socket_dir.mkdir()
        self.port = free_port()
        if self.user is not None:
            shutil.chown(self.dir, self.user)
            shutil.chown(self.socket_dir, self.user)
        self._run(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / command[0]), *command[1:]]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir)
        if check and done.returncode != 0:
            raise Unavailable(f"{command[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def start(self) -> None:
        options = (
            # fsync off: the machine does not crash in a test, a process does; commits stay
            # synchronous, so a 200 still means the WAL was written (the outage test relies on it).
            f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off -c max_connections=200"
        )
        self._run(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def password_role(self, role: str, password: str) -> str:
        """A role that must give `password` over TCP (everyone else stays on trust); its URL,
        without the password."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        self._run(["pg_ctl", "-D", str(self.data), "reload"])
        url = f"postgresql://{role}@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the reload is asynchronous: wait until it holds
            try:
                psycopg.connect(url, connect_timeout=5).close()
            except psycopg.OperationalError:
                return url
            time.sleep(0.1)
        raise Unavailable("the server did not start asking for a password")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def server_url() -> tuple[str, Cluster | None]:
    """The URL of the server to test against, and the cluster when we started one."""
    url = os.environ.get(URL_ENV)
    if url:
        return url, None
    cluster = Cluster()
    return cluster.url, cluster


def with_schema(url: str, schema: str) -> str:
    """The URL with search_path set to `schema`: each store under test gets its own tables."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def new_schema(url: str) -> str:
    """Create a fresh schema on the server; returns a store URL that uses it."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return with_schema(url, schema)
