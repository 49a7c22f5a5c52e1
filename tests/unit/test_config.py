"""Destination settings (DESIGN §3.1, §4.3): the RudderStack dashboard shape; errors name the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from destination.config import load_destinations, parse_destination_config, parse_destinations
from destination.errors import ConfigError
from destination.sandbox import SANDBOX_USAGE
from tests.conftest import BASE_CONFIG


def error(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_destination_config(data)
    return caught.value.message


def test_dashboard_shape_is_read() -> None:
    config = parse_destination_config({**BASE_CONFIG, "contractId": "c1", "unknownDashboardKey": True})
    assert config.domain == "acme.gainsightcloud.com" and config.contract_id == "c1"
    assert config.event_names == {"Ticket Closed": "ticket_closed"}
    assert config.person_fields == {"seats": "Seats__gc", "a.b": "Dotted__gc"}


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("acme.gainsightcloud.com", "acme.gainsightcloud.com"),
        ("https://Acme.GainsightCloud.com/", "acme.gainsightcloud.com"),
        ("localhost:8090", "localhost:8090"),
    ],
)
def test_domain_is_a_host(raw: str, host: str) -> None:
    assert parse_destination_config({"domain": raw}).domain == host


@pytest.mark.parametrize("raw", ["acme gainsight", "acme.com/path", "-acme.com"])
def test_malformed_domain_is_named(raw: str) -> None:
    assert error({"domain": raw}).startswith("invalid destination settings: domain: expected a host name")


def test_custom_target_must_end_in_gc() -> None:
    message = error({"personMap": [{"from": "seats", "to": "Seats"}]})
    assert "personMap[0].to: 'Seats' must end in __gc" in message


def test_standard_field_target_is_allowed() -> None:
    assert parse_destination_config({"companyMap": [{"from": "revenue", "to": "Arr"}]}).company_fields == {
        "revenue": "Arr"
    }


def test_company_map_checked_against_company_fields() -> None:
    assert "companyMap[0].to: 'FirstName'" in error({"companyMap": [{"from": "x", "to": "FirstName"}]})


def test_empty_dashboard_rows_are_ignored() -> None:
    config = parse_destination_config({"personMap": [{"from": "", "to": ""}], "eventNameMap": None})
    assert config.person_fields == {} and config.event_names == {}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"eventNameMap": [{"from": "A", "to": ""}]}, "eventNameMap[0].to"),
        ({"eventVersionMap": [{"from": "", "to": "1.0"}]}, "eventVersionMap[0].from"),
        ({"personMap": "seats:Seats__gc"}, "personMap: expected a list"),
        ({"accessKey": ["x"]}, "accessKey"),
    ],
)
def test_malformed_settings_are_named(data: dict[str, Any], named: str) -> None:
    assert named in error(data)


def test_secrets_are_not_shown() -> None:
    config = parse_destination_config({"accessKey": "very-secret"})
    assert "very-secret" not in repr(config)


def test_destinations_file_yaml_with_env_secrets(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "destinations:\n"
        "  - id: acme\n"
        "    writeKeys: [{env: WK}]\n"
        "    config:\n"
        "      domain: acme.gainsightcloud.com\n"
        "      accessKey: {env: AK}\n"
    )
    (dest,) = load_destinations(path, {"WK": "wk1", "AK": "ak1"})
    assert dest.write_keys[0].get_secret_value() == "wk1"
    assert dest.config.access_key is not None and dest.config.access_key.get_secret_value() == "ak1"


def test_missing_env_variable_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        '[{"id": "acme", "config": {"domain": "a.gainsightcloud.com", "accessKey": {"env": "NOPE"}}}]'
    )
    with pytest.raises(
        ConfigError, match=r"destinations\[0\]\.config\.accessKey: environment variable NOPE is not set"
    ):
        load_destinations(path, {})


def test_file_errors_name_file_and_setting(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    config = '{"domain": "a.b", "personMap": [{"from": "x", "to": "y"}]}'
    path.write_text('{"destinations": [{"id": "acme", "config": ' + config + "}]}")
    with pytest.raises(ConfigError) as caught:
        load_destinations(path, {})
    assert (
        str(path) in caught.value.message
        and "destinations[0].config: personMap[0].to" in caught.value.message
    )


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"destinations": [{"id": "a", "config": {}}]}, "config.domain is required"),
        (
            {
                "destinations": [
                    {"id": "a", "config": {"domain": "x.y"}},
                    {"id": "a", "config": {"domain": "x.y"}},
                ]
            },
            "used twice",
        ),
        (
            {
                "destinations": [
                    {"id": "web", "config": {"domain": "x.y", "usage": SANDBOX_USAGE}},
                    {"id": "app", "config": {"domain": "x.y", "usage": SANDBOX_USAGE}},
                ]
            },
            "destinations web, app all count usage into ProductUsage__gc on x.y",
        ),
        ({"destinations": [{"id": "bad id", "config": {"domain": "x.y"}}]}, "destinations[0].id"),
        ({"destinations": [{"id": "a", "jwt": {}, "config": {"domain": "x.y"}}]}, "exactly one of 'secret'"),
        (
            {"destinations": [{"id": "a", "writekeys": [], "config": {"domain": "x.y"}}]},
            "destinations[0].writekeys",
        ),
    ],
)
def test_destinations_file_problems(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_destinations(data, {})
    assert named in caught.value.message


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read destinations file"):
        load_destinations(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("destinations: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_destinations(bad)
