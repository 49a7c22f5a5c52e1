"""`gainsight-destination simulator`: run the Gainsight simulator alone, under uvicorn.

Registered by the package CLI as `app.command("simulator")(simulator_main)`; also runnable as
`python -m destination.simulator`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from destination.simulator.app import create_simulator_app
from destination.simulator.config import SimulatorConfig


def load_config(path: Path | None, overrides: dict[str, Any]) -> SimulatorConfig:
    """The config file (YAML or JSON) if any, then every option that was given on top."""
    base = SimulatorConfig.from_file(path) if path is not None else SimulatorConfig()
    data = base.model_dump()
    faults = data.pop("faults")
    for name, value in overrides.items():
        if value is None:
            continue
        if name in faults:
            faults[name] = value
        else:
            data[name] = value
    return SimulatorConfig.model_validate({**data, "faults": faults})


def banner(config: SimulatorConfig, host: str, port: int) -> str:
    """Start-up text: where it listens and the fake tenant's own (fake) credentials."""
    topics = "; ".join(
        f"{topic}: " + ", ".join(f"{e.name} v{e.version}" for e in events)
        for topic, events in config.topics.items()
    )
    return "\n".join(
        [
            f"Gainsight simulator listening on http://{host}:{port}",
            f"  access key     {config.access_key}",
            f"  shared secret  {config.shared_secret}",
            f"  tenant id      {config.tenant_id}",
            f"  topics         {topics or '(none)'}",
            f"  rate limits    {config.rate_limit_per_minute} per {config.minute_seconds:g}s, "
            f"{config.rate_limit_per_day} per {config.day_seconds:g}s; Timeline "
            f"{config.timeline_rate_limit_per_minute} per {config.minute_seconds:g}s",
            f"  inspect        http://{host}:{port}/__sim/counters (and /people, /companies, "
            "/events, /activities, /requests, /faults)",
        ]
    )


def _serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def simulator_main(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="SimulatorConfig as YAML or JSON; options below override it.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    rate_limit_per_minute: Annotated[int | None, typer.Option(help="Calls per minute.")] = None,
    rate_limit_per_day: Annotated[int | None, typer.Option(help="Calls per day.")] = None,
    timeline_rate_limit_per_minute: Annotated[
        int | None, typer.Option(help="Timeline activity saves per minute (their own class).")
    ] = None,
    minute_seconds: Annotated[
        float | None, typer.Option(help="Length of the 'minute' window (short for tests).")
    ] = None,
    day_seconds: Annotated[float | None, typer.Option(help="Length of the 'day' window.")] = None,
    access_key: Annotated[str | None, typer.Option(help="Accesskey the tenant accepts.")] = None,
    shared_secret: Annotated[str | None, typer.Option(help="Publisher shared secret.")] = None,
    tenant_id: Annotated[str | None, typer.Option(help="Tenant id.")] = None,
    require_signature: Annotated[
        bool | None, typer.Option(help="Reject events without X-Payload-Signature.")
    ] = None,
    error_rate: Annotated[
        float | None, typer.Option(help="Probability (0-1) of a 500 GU_1101 answer.")
    ] = None,
    latency: Annotated[float | None, typer.Option(help="Seconds added to every call.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for the error-rate RNG.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run a fake Gainsight tenant (People, Company, Events, Timeline APIs) for tests and demos."""
    overrides: dict[str, Any] = {
        "rate_limit_per_minute": rate_limit_per_minute,
        "rate_limit_per_day": rate_limit_per_day,
        "timeline_rate_limit_per_minute": timeline_rate_limit_per_minute,
        "minute_seconds": minute_seconds,
        "day_seconds": day_seconds,
        "access_key": access_key,
        "shared_secret": shared_secret,
        "tenant_id": tenant_id,
        "require_signature": require_signature,
        "error_rate": error_rate,
        "latency_seconds": latency,
        "seed": seed,
    }
    try:
        settings = load_config(config, overrides)
    except (ValidationError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(banner(settings, host, port))
    _serve(create_simulator_app(settings), host, port, log_level)
