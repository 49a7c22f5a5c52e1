"""Schema versions: each backend's schema is a list of numbered steps, and a store brings its
database up to the newest step when it opens (so a new release keeps the queue).

A steps file holds blocks named v1, v2, … (see sqlfile.py); v1 is the schema the first release
shipped, and a step is never edited once released: a change is a new step. The database records
the version it has reached in `schema_version`. Steps run in one transaction under a lock that
every process opening the store takes (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so
replicas starting together migrate once. A database newer than this build is refused.

SQLite refuses a few statements inside a transaction (VACUUM; `PRAGMA auto_vacuum` takes effect on
an existing file only through one): a pending step's such statements run first, before the
transaction, and run again should the process die before the step is recorded (they are
idempotent).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from destination.delivery import sqlfile
from destination.delivery.store import StoreError

_STEP = re.compile(r"^v(\d+)$")


@dataclass(frozen=True, slots=True)
class Step:
    version: int
    sql: str


def steps(filename: str) -> tuple[Step, ...]:
    """The numbered steps of `filename`, checked to run v1, v2, … without a gap."""
    found = []
    for name, sql in sqlfile.load(filename).items():
        match = _STEP.match(name)
        if match is None:
            raise StoreError(f"{filename}: block {name!r} is not a step (v1, v2, …)")
        found.append(Step(int(match.group(1)), sql))
    found.sort(key=lambda step: step.version)
    if [step.version for step in found] != list(range(1, len(found) + 1)):
        raise StoreError(f"{filename}: steps must be numbered v1, v2, … without gaps")
    return tuple(found)


def pending(all_steps: Sequence[Step], current: int, target: int | None = None) -> list[Step]:
    """The steps that take a database from `current` to `target` (default: the newest)."""
    latest = all_steps[-1].version if all_steps else 0
    if current > latest:
        raise StoreError(
            f"the store has schema version {current}, newer than this build's {latest}: "
            "run the newer release, or a new store"
        )
    goal = latest if target is None else target
    return [step for step in all_steps if current < step.version <= goal]


def sqlite_statements(sql: str) -> list[str]:
    """A script cut into statements (a trigger's BEGIN … END stays whole). executescript would
    commit the migration's transaction, so steps run statement by statement instead."""
    statements, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if _code(buffer):
        raise StoreError(f"unterminated SQL statement in a schema step: {buffer.strip()[:60]!r}")
    return statements


def _code(sql: str) -> str:
    return "".join(line for line in sql.splitlines() if not line.strip().startswith("--")).strip()


_OUTSIDE_TRANSACTION = ("VACUUM", "PRAGMA AUTO_VACUUM")


def outside_transaction(statement: str) -> bool:
    """Whether SQLite must run `statement` outside a transaction."""
    return _code(statement).upper().startswith(_OUTSIDE_TRANSACTION)


def _sqlite_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone()
    row = conn.execute("SELECT version FROM schema_version").fetchone() if exists else None
    return 0 if row is None else int(row[0])


def migrate_sqlite(conn: sqlite3.Connection, all_steps: Sequence[Step], target: int | None = None) -> int:
    """Bring the database on `conn` (autocommit mode) up to date; returns its version."""
    for step in pending(all_steps, _sqlite_version(conn), target):
        for statement in sqlite_statements(step.sql):
            if outside_transaction(statement):
                conn.execute(statement)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = 0 if row is None else int(row[0])
        for step in pending(all_steps, version, target):
            for statement in sqlite_statements(step.sql):
                if not outside_transaction(statement):
                    conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (step.version,))
            version = step.version
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version
