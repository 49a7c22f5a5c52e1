"""`gainsight-destination events`: any event's state and attempts, a person's events, retry now."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from destination.cli_common import (
    DEFAULT_STORE,
    MAX_ID,
    PLAIN_HELP,
    DestinationFilter,
    DestinationsOption,
    StoreOption,
    echo_json,
    fail,
    selection,
    with_store,
)

if TYPE_CHECKING:
    from destination.delivery.store import Store, StoredEvent

events = typer.Typer(
    help="Look up any event's state and attempts (reads GSD_STORE_URL).",
    no_args_is_help=True,
    rich_markup_mode=PLAIN_HELP,
)


@events.command("show")
def events_show(
    message_id: Annotated[str, typer.Argument(help="The event's messageId.")],
    store: StoreOption = DEFAULT_STORE,
    destination: DestinationFilter = None,
    destinations: DestinationsOption = None,
) -> None:
    """The event's state, payload and every attempt (request sent, Gainsight's answer), as JSON,
    and what it waits for (the budget too when the destinations file is given)."""
    from destination.delivery.views import event_view

    async def work(opened: Store) -> None:
        found = await opened.find_events(message_id, destination)
        if not found:
            where = f" for destination {destination!r}" if destination else ""
            raise fail(f"no event with messageId {message_id!r}{where}")
        owners = sorted({e.destination_id for e in found})
        if len(owners) > 1:
            raise fail(
                f"messageId {message_id!r} is in several destinations ({', '.join(owners)}): "
                "name one with --destination"
            )
        echo_json(event_view(found[-1], await waiting_for_of(opened, found[-1], destinations)))

    with_store(store, work)


@events.command("list")
def events_list(
    store: StoreOption = DEFAULT_STORE,
    destination: DestinationFilter = None,
    state: Annotated[
        str | None,
        typer.Option(help="queued, leased, delivered, unchanged, counted, filtered, rejected or dead."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Only this person's: a userId, anonymousId or email (any case).")
    ] = None,
    limit: int = 100,
    offset: int = 0,
) -> None:
    """One JSON line per event, oldest first."""
    from destination.delivery.views import EVENT_STATES_SHOWN, event_summary

    if state is not None and state not in EVENT_STATES_SHOWN:
        raise fail(f"--state: expected one of {', '.join(EVENT_STATES_SHOWN)}")
    if user is not None and not user:
        raise fail("--user: expected a userId, anonymousId or email, got nothing")

    async def work(opened: Store) -> None:
        for found in await opened.list_events(destination, state, limit, offset, user=user):
            echo_json(event_summary(found))

    with_store(store, work)


@events.command("retry")
def events_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Event ids.", min=1, max=MAX_ID)] = None,
    store: StoreOption = DEFAULT_STORE,
    destination: DestinationFilter = None,
    everything: Annotated[bool, typer.Option("--all", help="Every queued event.")] = False,
) -> None:
    """Retry now: queued events waiting for a backoff become due; the running service sends them."""
    chosen = selection(ids, destination, everything, "event ids")

    async def work(opened: Store) -> None:
        count = await opened.retry_now(chosen, destination, now=time.time())
        typer.echo(f"{count} waiting event(s) due now")

    with_store(store, work)


async def waiting_for_of(
    store: Store, event: StoredEvent, destinations: Path | None
) -> dict[str, Any] | None:
    """The event's `waitingFor`; the budget is looked at when the destinations file names the
    event's destination (its domain is the tenant), with the GSD_RATE_* settings. Settings that
    cannot be read leave the budget out, with a warning: the event is shown all the same."""
    from pydantic import ValidationError

    from destination.config import load_destination_configs
    from destination.delivery.waiting import waiting_for
    from destination.errors import ConfigError
    from destination.settings import Settings
    from destination.status import rate_windows

    try:
        configs = load_destination_configs(destinations) if destinations is not None else {}
        windows = rate_windows(Settings())
    except (ConfigError, ValidationError) as exc:
        problem = exc.message if isinstance(exc, ConfigError) else "invalid GSD_RATE_* setting"
        typer.secho(f"warning: the rate budget is left out of waitingFor: {problem}", err=True)
        configs, windows = {}, ()
    found = configs.get(event.destination_id)
    return await waiting_for(store, event, time.time(), found.domain if found else None, windows)
