"""What the command's subcommands share: the error exit, and opening the store for the commands
that read or change it (dead-letters, events)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from destination.jsonutil import dumps

# Plain (click) help: rich's tables cut long flag names at 80 columns, and read "[env X]" as markup.
PLAIN_HELP = None

if TYPE_CHECKING:
    from destination.delivery.store import Store

DestinationsOption = Annotated[
    Path | None,
    typer.Option("--destinations", envvar="GSD_DESTINATIONS", help="Destinations file (YAML or JSON)."),
]


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


StoreOption = Annotated[str, typer.Option("--store", envvar="GSD_STORE_URL", help="Store URL.")]
DestinationFilter = Annotated[str | None, typer.Option("--destination", help="Only this destination.")]
MAX_ID = 2**63 - 1  # store ids are signed 64-bit integers
DEFAULT_STORE = "sqlite:///./data/gsd.sqlite3"


def with_store(url: str, work: Callable[[Store], Awaitable[None]]) -> None:
    from destination.delivery.store import StoreError
    from destination.delivery.stores import open_store

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise fail(f"no store at {url.removeprefix('sqlite:///')} (set --store or GSD_STORE_URL)")

    async def run() -> None:
        try:
            store = open_store(url)
        except StoreError as exc:
            raise fail(str(exc)) from None
        try:
            await work(store)
        except StoreError as exc:  # e.g. a PostgreSQL server out of reach
            raise fail(str(exc)) from None
        finally:
            await store.close()

    asyncio.run(run())


def echo_json(value: object) -> None:
    sys.stdout.buffer.write(dumps(value) + b"\n")
    sys.stdout.flush()


AllFlag = Annotated[bool, typer.Option("--all", help="Every dead letter of every destination.")]
NOTHING_SELECTED = "nothing selected: name dead-letter ids, --destination ID, or --all"


def selection(
    ids: list[int] | None, destination: str | None, everything: bool, named: str = "dead-letter ids"
) -> list[int] | None:
    """The ids to act on (None: all matching --destination); refuses an empty selection."""
    if everything and (ids or destination is not None):
        raise fail("--all selects everything; do not combine it with ids or --destination")
    if not everything and not ids and destination is None:
        raise fail(NOTHING_SELECTED.replace("dead-letter ids", named))
    return ids or None
