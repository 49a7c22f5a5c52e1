"""The `gainsight-destination` command: serve, simulator, transform, validate-config."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from destination.cli_capacity import capacity_command
from destination.cli_common import (
    DEFAULT_STORE,
    MAX_ID,
    PLAIN_HELP,
    AllFlag,
    DestinationFilter,
    DestinationsOption,
    StoreOption,
)
from destination.cli_common import echo_json as _echo_json
from destination.cli_common import fail as _fail
from destination.cli_common import selection as _selection
from destination.cli_common import with_store as _with_store
from destination.cli_events import events
from destination.config import DestinationConfig, load_destination_configs, parse_destination_config
from destination.errors import ConfigError
from destination.jsonutil import JSONDecodeError, dumps, loads
from destination.mapping.spec import MappingSpecError, default_specs
from destination.simulator.cli import simulator_main

if TYPE_CHECKING:
    from destination.delivery.store import Store

app = typer.Typer(
    name="gainsight-destination",
    help="Deliver RudderStack/Segment events into Gainsight CS.",
    no_args_is_help=True,
    rich_markup_mode=PLAIN_HELP,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [env GSD_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [env GSD_PORT; default 8080].")] = None,
    destinations: Annotated[
        Path | None, typer.Option("--destinations", help="Destinations file [env GSD_DESTINATIONS].")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request (one line each).")] = True,
) -> None:
    """Run the service. With no destinations configured it runs in sandbox mode."""
    from destination.app import create_app
    from destination.banner import banner
    from destination.connections import ConnectionLimits
    from destination.logs import configure_logging
    from destination.serving import ServeError, bind, check_store, run_server
    from destination.settings import Settings

    # Flags win over GSD_* variables, which Settings reads itself.
    overrides = {
        k: v for k, v in {"host": host, "port": port, "destinations": destinations}.items() if v is not None
    }
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise _fail(f"invalid setting: {_settings_problems(exc)}") from None
    configure_logging(settings.log_level, settings.log_format)
    try:
        check_store(settings.store_url)
        application = create_app(settings)
        # Bind every interface only when inbound auth protects the routes.
        listen_host = settings.host or ("0.0.0.0" if settings.auth_enabled else "127.0.0.1")
        sock = bind(listen_host, settings.port)
    except (ConfigError, MappingSpecError, ServeError) as exc:
        raise _fail(str(exc)) from None
    bound_port = sock.getsockname()[1]
    if settings.admin_token is None:
        logging.getLogger("destination").info(
            "admin routes and /status are off: set GSD_ADMIN_TOKEN to turn them on"
        )
    code = run_server(
        application,
        sock,
        access_log=access_log,
        log_level=settings.log_level,
        on_ready=lambda: typer.echo(banner(application, listen_host, bound_port, settings)),
        limits=ConnectionLimits(
            settings.max_connections, settings.header_timeout_seconds, settings.max_header_bytes
        ),
        keep_alive_seconds=settings.keep_alive_seconds,
        gc_young_threshold=settings.gc_young_threshold,
    )
    if code:
        raise typer.Exit(code)


def _settings_problems(exc: ValidationError) -> str:
    return "; ".join(
        f"GSD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
    )


def _transform_config(
    destinations: Path | None, destination_id: str | None, config: Path | None
) -> DestinationConfig:
    if config is not None:
        try:
            return parse_destination_config(loads(config.read_bytes()))
        except (OSError, JSONDecodeError) as exc:
            raise _fail(f"cannot read {config}: {exc}") from None
    if destinations is not None:
        # Only the dashboard settings: inbound secrets ({env: ...} or not) are not needed here.
        found = load_destination_configs(destinations)
        if destination_id is None and len(found) == 1:
            return next(iter(found.values()))
        if destination_id not in found:
            raise _fail(f"name a destination with --destination (one of: {', '.join(sorted(found))})")
        return found[destination_id]
    from destination.sandbox import sandbox_destination

    return sandbox_destination().config


@app.command()
def transform(
    source: Annotated[
        Path | None, typer.Argument(help="Events file (JSON array or JSON lines); stdin when omitted.")
    ] = None,
    destinations: DestinationsOption = None,
    destination: Annotated[
        str | None, typer.Option("--destination", help="Destination id in the destinations file.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="A RudderStack dashboard Config as a JSON file.")
    ] = None,
) -> None:
    """Print the planned Gainsight requests for events, one JSON line each; sends nothing.

    Exits 1 when any event could not be planned (its line holds the error).
    """
    from destination.dryrun import EventStreamError, dry_run, parse_event_stream

    try:
        settings = _transform_config(destinations, destination, config)
        text = source.read_text(encoding="utf-8") if source else sys.stdin.read()
        events = parse_event_stream(text)
    except ConfigError as exc:
        raise _fail(exc.message) from None
    except UnicodeDecodeError:
        raise _fail("the events are not UTF-8 text") from None
    except (OSError, EventStreamError) as exc:
        raise _fail(str(exc)) from None
    failed = False
    out = sys.stdout.buffer
    for line in dry_run(events, settings, default_specs()):
        failed = failed or "error" in line
        out.write(dumps(line) + b"\n")
    out.flush()
    if failed:
        raise typer.Exit(1)


@app.command("validate-config")
def validate_config(destinations: DestinationsOption = None) -> None:
    """Check the mapping files and a destinations file; list every problem at once (exit 2 if any)."""
    import os

    from destination.config import read_destinations_file
    from destination.config_check import check_destinations

    try:
        specs = default_specs()
    except MappingSpecError as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"mappings: Person {len(specs.person.fields)} fields, Company {len(specs.company.fields)} fields"
    )
    if destinations is None:
        typer.echo("no destinations file given (--destinations or GSD_DESTINATIONS): sandbox mode")
        return
    try:
        checked = check_destinations(read_destinations_file(destinations), os.environ)
    except ConfigError as exc:
        raise _fail(exc.message) from None
    for summary in checked.summaries:
        typer.echo(summary)
    for problem in checked.problems:
        typer.secho(f"error: {destinations}: {problem}", err=True, fg=typer.colors.RED)
    if checked.problems:
        count = len(checked.problems)
        typer.secho(f"{count} problem{'s' if count > 1 else ''} found", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    typer.echo("ok")


app.command("simulator")(simulator_main)

dead_letters = typer.Typer(
    help="Inspect, replay or purge dead letters (reads GSD_STORE_URL).",
    no_args_is_help=True,
    rich_markup_mode=PLAIN_HELP,
)
app.add_typer(dead_letters, name="dead-letters")

Ids = Annotated[list[int] | None, typer.Argument(help="Dead-letter ids.", min=1, max=MAX_ID)]
EventIdArg = Annotated[int, typer.Argument(help="Dead-letter id.", min=1, max=MAX_ID)]


@dead_letters.command("list")
def dead_letters_list(
    store: StoreOption = DEFAULT_STORE,
    destination: DestinationFilter = None,
    limit: int = 100,
    offset: int = 0,
) -> None:
    """One JSON line per dead letter, oldest first (none: a line on stderr says so)."""

    from destination.delivery.stores import redacted
    from destination.delivery.views import dead_letter_summary

    async def work(opened: Store) -> None:
        letters = await opened.list_dead_letters(destination, limit, offset)
        for letter in letters:
            _echo_json(dead_letter_summary(letter))
        if not letters:  # said on stderr: stdout stays JSON lines only
            where = f" for destination {destination!r}" if destination is not None else ""
            beyond = f" past offset {offset}" if offset else ""
            typer.echo(f"no dead letters{where}{beyond} in {redacted(store)}", err=True)

    _with_store(store, work)


@dead_letters.command("show")
def dead_letters_show(event_id: EventIdArg, store: StoreOption = DEFAULT_STORE) -> None:
    """The dead letter's event and every attempt's Gainsight answer."""
    from destination.delivery.views import event_view

    async def work(opened: Store) -> None:
        event = await opened.get_dead_letter(event_id)
        if event is None:
            raise _fail(f"no dead letter with id {event_id}")
        _echo_json(event_view(event))

    _with_store(store, work)


@dead_letters.command("replay")
def dead_letters_replay(
    ids: Ids = None,
    store: StoreOption = DEFAULT_STORE,
    destination: DestinationFilter = None,
    everything: AllFlag = False,
) -> None:
    """Re-queue dead letters in their original order; the running service delivers them."""
    chosen = _selection(ids, destination, everything)

    async def work(opened: Store) -> None:
        count = await opened.replay_dead_letters(chosen, destination)
        typer.echo(f"replayed {count} dead letter(s)")

    _with_store(store, work)


@dead_letters.command("purge")
def dead_letters_purge(
    ids: Ids = None,
    store: StoreOption = DEFAULT_STORE,
    destination: DestinationFilter = None,
    everything: AllFlag = False,
) -> None:
    """Delete dead letters for good."""
    chosen = _selection(ids, destination, everything)

    async def work(opened: Store) -> None:
        count = await opened.purge_dead_letters(chosen, destination)
        typer.echo(f"purged {count} dead letter(s)")

    _with_store(store, work)


app.add_typer(events, name="events")
app.command("capacity")(capacity_command)


def main() -> None:
    app()
