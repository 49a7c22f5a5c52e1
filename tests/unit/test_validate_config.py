"""validate-config: every problem of a destinations file in one run; transform without inbound secrets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from destination.cli import app
from destination.config import load_destinations
from destination.errors import ConfigError
from tests.conftest import BASE_CONFIG

runner = CliRunner()


def write(tmp_path: Path, destinations: list[dict[str, Any]]) -> Path:
    path = tmp_path / "destinations.json"
    path.write_bytes(orjson.dumps({"destinations": destinations}))
    return path


def problems(tmp_path: Path, destinations: list[dict[str, Any]]) -> list[str]:
    path = write(tmp_path, destinations)
    result = runner.invoke(app, ["validate-config", "--destinations", str(path)])
    assert result.exit_code == 2, result.output
    prefix = f"error: {path}: "
    lines = [line.removeprefix(prefix) for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert result.stderr.strip().endswith(f"{len(lines)} problem{'s' if len(lines) > 1 else ''} found")
    return lines


def test_a_good_file_is_ok(tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "acme", "writeKeys": ["k1"], "config": BASE_CONFIG}])
    result = runner.invoke(app, ["validate-config", "--destinations", str(path)])
    assert result.exit_code == 0 and result.stdout.strip().endswith("ok")


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    typo = {k: v for k, v in BASE_CONFIG.items() if k not in ("accessKey", "tenantId")}
    found = problems(
        tmp_path,
        [
            {"id": "acme", "writeKeys": ["shared"], "config": {**typo, "accesskey": "ak", "topicname": "x"}},
            {
                "id": "beta",
                "writeKeys": ["shared"],
                "config": {**BASE_CONFIG, "personMap": [{"from": "a", "to": "B"}]},
            },
        ],
    )
    assert found == [
        "destination acme: config.accesskey: unknown setting; did you mean accessKey?",
        "destination acme: config.topicname: unknown setting; did you mean topicName?",
        "destination acme: identify and group events need accessKey, which is missing",
        "destination acme: track events need tenantId, which is missing",
        "destination beta: config: personMap[0].to: 'B' must end in __gc (a custom field) "
        "or be a standard Person field",
        "a write key is shared by destinations acme, beta: each destination needs its own",
    ]


def test_track_settings_are_only_required_once_track_is_configured(tmp_path: Path) -> None:
    identify_only = {"domain": "acme.gainsightcloud.com", "accessKey": "ak"}
    path = write(tmp_path, [{"id": "acme", "config": identify_only}])
    assert runner.invoke(app, ["validate-config", "--destinations", str(path)]).exit_code == 0
    found = problems(tmp_path, [{"id": "acme", "config": {**identify_only, "topicName": "Support"}}])
    assert found == ["destination acme: track events need sharedSecret, tenantId, which are missing"]


def test_unset_environment_variables_and_dashboard_keys(tmp_path: Path) -> None:
    config = {**BASE_CONFIG, "accessKey": {"env": "GSD_TEST_UNSET_KEY"}, "blacklistedEvents": [], "zzz": 1}
    found = problems(tmp_path, [{"id": "acme", "config": config}])
    assert (
        found[0] == "destination acme: config.accessKey: environment variable GSD_TEST_UNSET_KEY is not set"
    )
    assert found[1].startswith("destination acme: config.zzz: unknown setting; known settings: accessKey, ")
    assert len(found) == 2  # blacklistedEvents is RudderStack's own, not a typo


def test_serve_refuses_a_shared_write_key_and_warns_of_unknown_settings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = write(
        tmp_path,
        [
            {"id": "a", "writeKeys": ["k"], "config": BASE_CONFIG},
            {"id": "b", "writeKeys": ["k"], "config": BASE_CONFIG},
        ],
    )
    with pytest.raises(ConfigError, match="a write key is shared by destinations a, b") as raised:
        load_destinations(shared)
    assert "'k'" not in raised.value.message
    typo = write(tmp_path, [{"id": "a", "config": {**BASE_CONFIG, "accesskey": "x"}}])
    with caplog.at_level(logging.WARNING):
        (loaded,) = load_destinations(typo)
    assert loaded.id == "a"
    assert (
        "destination a: config.accesskey: unknown setting; did you mean accessKey? (ignored)" in caplog.text
    )


def test_transform_needs_no_inbound_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSD_TEST_JWT", raising=False)
    path = write(
        tmp_path,
        [
            {
                "id": "acme",
                "writeKeys": [{"env": "GSD_TEST_WRITE_KEY"}],
                "jwt": {"secret": {"env": "GSD_TEST_JWT"}},
                "webhookSecret": {"env": "GSD_TEST_WEBHOOK"},
                "config": BASE_CONFIG,
            }
        ],
    )
    event = {"type": "identify", "userId": "u1", "traits": {"email": "ada@example.com"}}
    result = runner.invoke(
        app, ["transform", "--destinations", str(path)], input=orjson.dumps(event).decode()
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout.splitlines()[0])["requests"][0]["method"] == "PUT"


def test_an_unset_variable_hides_nothing_at_any_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GSD_TEST_UNSET_KEY", raising=False)
    config = {
        **BASE_CONFIG,
        "accessKey": {"env": "GSD_TEST_UNSET_KEY"},
        "personMap": [{"form": "seats", "to": "Seats__gc"}],
    }
    found = problems(tmp_path, [{"id": "acme", "writekeys": ["k1"], "config": config}])
    assert found == [
        "destination acme: writekeys: unknown setting; did you mean writeKeys?",
        "destination acme: config.accessKey: environment variable GSD_TEST_UNSET_KEY is not set",
        "destination acme: config.personMap[0].form: unknown key; did you mean from?",
        "destination acme: config.personMap[0].from: Field required",
    ]


def test_unknown_keys_of_the_file_and_of_jwt_get_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "destinations.json"
    entry = {"id": "acme", "jwt": {"secret": "s", "audiance": "gsd"}, "config": BASE_CONFIG}
    path.write_bytes(orjson.dumps({"destinations": [entry], "destination": []}))
    result = runner.invoke(app, ["validate-config", "--destinations", str(path)])
    assert result.exit_code == 2
    assert f"error: {path}: destination: unknown setting; did you mean destinations?" in result.stderr
    assert f"error: {path}: destination acme: jwt.audiance: unknown setting; did you mean audience?" in (
        result.stderr
    )
    assert "Extra inputs" not in result.stderr


@pytest.mark.parametrize(
    ("entry", "setting"),
    [
        ({"jwt": {"publicKey": {"env": "GSD_TEST_UNSET_PEM"}}}, "jwt.publicKey"),
        (
            {"config": {**BASE_CONFIG, "personMap": [{"from": "a", "to": {"env": "GSD_TEST_UNSET_PEM"}}]}},
            "config.personMap[0].to",
        ),
    ],
)
def test_a_setting_whose_variable_is_unset_gets_that_one_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: dict[str, Any], setting: str
) -> None:
    monkeypatch.delenv("GSD_TEST_UNSET_PEM", raising=False)
    found = problems(tmp_path, [{"id": "acme", "config": BASE_CONFIG, **entry}])
    assert found == [f"destination acme: {setting}: environment variable GSD_TEST_UNSET_PEM is not set"]


def test_no_summary_is_made_of_a_placeholder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GSD_TEST_UNSET_DOMAIN", raising=False)
    path = write(
        tmp_path, [{"id": "acme", "config": {**BASE_CONFIG, "domain": {"env": "GSD_TEST_UNSET_DOMAIN"}}}]
    )
    result = runner.invoke(app, ["validate-config", "--destinations", str(path)])
    assert result.exit_code == 2 and "unset" not in result.stdout and "destination acme:" not in result.stdout
    assert "config.domain: environment variable GSD_TEST_UNSET_DOMAIN is not set" in result.stderr
