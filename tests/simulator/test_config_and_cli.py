"""Configuration (sandbox tenant, files) and the `simulator` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from fastapi import FastAPI
from pydantic import ValidationError
from typer.testing import CliRunner

from destination.simulator import SANDBOX, EventDef, SimulatorConfig, cli
from destination.simulator.fields import FieldType


def test_sandbox_tenant_is_as_promised() -> None:
    assert (SANDBOX.access_key, SANDBOX.shared_secret, SANDBOX.tenant_id, SANDBOX.topic) == (
        "sandbox-access-key",
        "sandbox-shared-secret",
        "sandbox-tenant",
        "Sandbox",
    )
    config = SimulatorConfig.sandbox()
    assert config.topics == {
        "Sandbox": [
            EventDef(name="ticket_closed", version="1.0"),
            EventDef(name="feature_used", version="1.0"),
            EventDef(name="order_completed", version="1.0"),
        ]
    }
    assert config.person_fields == {"Seats__gc": FieldType.NUMBER, "Plan__gc": FieldType.STRING}
    assert config.company_fields == {"Region__gc": FieldType.STRING, "Tier__gc": FieldType.STRING}


def test_default_config_is_the_sandbox_tenant() -> None:
    assert SimulatorConfig() == SimulatorConfig.sandbox()


def test_sandbox_accepts_overrides() -> None:
    assert SimulatorConfig.sandbox(rate_limit_per_minute=5).rate_limit_per_minute == 5


def test_config_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "access_key: ak\n"
        "topics:\n  Support:\n    - {name: ticket_closed, version: '1.0.0'}\n"
        "company_fields: {Renewal__gc: DATE}\n"
        "faults: {error_rate: 0.1, seed: 3}\n"
    )
    config = SimulatorConfig.from_file(path)
    assert config.access_key == "ak" and config.topics["Support"][0].version == "1.0.0"
    assert config.company_fields == {"Renewal__gc": FieldType.DATE}
    assert (config.faults.error_rate, config.faults.seed) == (0.1, 3)


def test_config_loads_from_json(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"tenant_id": "t-9", "query_bare_list": True}))
    config = SimulatorConfig.from_file(path)
    assert (config.tenant_id, config.query_bare_list) == ("t-9", True)


def test_empty_config_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert SimulatorConfig.from_file(path) == SimulatorConfig()


def test_unquoted_yaml_version_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("topics:\n  Support:\n    - {name: a, version: 1.10}\n")
    with pytest.raises(ValidationError, match="quote it"):
        SimulatorConfig.from_file(path)


@pytest.mark.parametrize(
    "settings",
    [
        {"unknown_switch": True},
        {"rate_limit_per_minute": 0},
        {"minute_seconds": 120, "day_seconds": 60},
        {"update_no_match": "insert"},
        {"faults": {"error_rate": 1.5}},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig.model_validate(settings)


def test_options_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("access_key: from-file\ntenant_id: file-tenant\n")
    config = cli.load_config(path, {"access_key": "from-flag", "error_rate": 0.25, "latency_seconds": None})
    assert (config.access_key, config.tenant_id, config.faults.error_rate) == (
        "from-flag",
        "file-tenant",
        0.25,
    )
    assert config.faults.latency_seconds == 0


def run_command(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, Any]]:
    served: dict[str, Any] = {}

    def fake_serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
        served.update(app=app, host=host, port=port, log_level=log_level)

    monkeypatch.setattr(cli, "_serve", fake_serve)
    command = typer.Typer()
    command.command()(cli.simulator_main)
    return CliRunner().invoke(command, args), served


def test_command_prints_address_and_credentials_then_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    result, served = run_command(
        ["--port", "9001", "--rate-limit-per-minute", "7", "--minute-seconds", "2", "--error-rate", "0.5"],
        monkeypatch,
    )
    assert result.exit_code == 0, result.output
    assert "listening on http://127.0.0.1:9001" in result.output
    for secret in (SANDBOX.access_key, SANDBOX.shared_secret, SANDBOX.tenant_id, "ticket_closed v1.0"):
        assert secret in result.output
    simulator = served["app"].state.simulator
    assert (served["host"], served["port"]) == ("127.0.0.1", 9001)
    assert simulator.config.rate_limit_per_minute == 7 and simulator.config.minute_seconds == 2
    assert simulator.config.faults.error_rate == 0.5


def test_command_reads_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("access_key: file-key\n")
    result, served = run_command(["--config", str(path), "--require-signature"], monkeypatch)
    assert result.exit_code == 0, result.output
    assert "file-key" in result.output
    assert served["app"].state.simulator.config.require_signature is True


def test_command_refuses_an_invalid_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    result, served = run_command(["--error-rate", "3"], monkeypatch)
    assert result.exit_code != 0 and not served
