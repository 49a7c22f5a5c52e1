"""Named SQL blocks from a .sql file of this package: "-- name: x" starts block x, which runs to the
next name. Every backend keeps its statements in such a file (queries.sql for SQLite, postgres.sql
for PostgreSQL) and its schema steps in another (see migrations.py)."""

from __future__ import annotations

import functools
import importlib.resources
import re

from destination.delivery.store import StoreError

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@functools.cache
def load(filename: str) -> dict[str, str]:
    """The named blocks of `filename` (in destination/delivery), read once per process."""
    text = importlib.resources.files(__package__).joinpath(filename).read_text("utf-8")
    parts = _NAME.split(text)  # [preamble, name1, body1, name2, body2, ...]
    named = dict(zip(parts[1::2], (body.strip() for body in parts[2::2]), strict=True))
    if len(named) != len(parts) // 2:
        raise StoreError(f"{filename} names a query twice")
    return named
