"""What a person meets first: the start-up banner, `GET /`, `--help` in an 80-column terminal,
and a store directory they must fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from destination.banner import banner
from destination.cli import app
from destination.serving import uid_hint
from destination.settings import Settings
from tests.conftest import memory_app

COMMANDS = [
    ["serve"],
    ["transform"],
    ["validate-config"],
    ["simulator"],
    ["dead-letters", "list"],
    ["dead-letters", "replay"],
    ["events", "list"],
    ["events", "show"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_keeps_every_flag_whole_at_80_columns(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and max(len(line) for line in result.output.splitlines()) <= 80
    if command == ["simulator"]:
        assert "--rate-limit-per-minute" in result.output and "--no-require-signature" in result.output


def test_serve_help_names_the_environment_variable_of_each_flag() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "80"})
    for text in ("Listen address [env GSD_HOST].", "[env GSD_PORT; default 8080]", "[env GSD_DESTINATIONS]"):
        assert text in result.output
    assert " ." not in result.output


@pytest.mark.parametrize(("token", "page"), [(None, "/docs"), (SecretStr("t"), "/status")])
def test_the_root_sends_people_to_the_status_page_or_the_docs(token: SecretStr | None, page: str) -> None:
    with TestClient(memory_app(Settings(admin_token=token)), base_url="http://127.0.0.1") as client:
        response = client.get("/", follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (307, page)
        assert client.get("/").status_code in (200, 401)  # the page itself: open, or asking for the token


@pytest.mark.parametrize(
    ("token", "line"),
    [
        (None, "status page: off (set GSD_ADMIN_TOKEN to turn on /status and the admin routes)"),
        (
            SecretStr("t"),
            "status page: http://127.0.0.1:8080/status (any user name, GSD_ADMIN_TOKEN as password)",
        ),
    ],
)
def test_the_sandbox_banner_says_where_the_status_page_is_and_how_to_open_it(
    token: SecretStr | None, line: str
) -> None:
    settings = Settings(admin_token=token)
    lines = banner(memory_app(settings), "127.0.0.1", 8080, settings).splitlines()
    assert lines[0].startswith("gainsight-destination: SANDBOX MODE")
    assert lines[-2].startswith("Listening on http://127.0.0.1:8080") and lines[-1] == line


def test_the_configured_banner_says_listening_as_the_sandbox_does(
    tmp_path: Path,
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("destinations: [{id: acme, config: {domain: acme.gainsightcloud.com, accessKey: k}}]")
    settings = Settings(destinations=path, gainsight_base_url="http://127.0.0.1:8090")
    assert banner(memory_app(settings), "0.0.0.0", 8080, settings).splitlines()[:2] == [
        "gainsight-destination: Listening on http://0.0.0.0:8080",
        "Gainsight calls are redirected to http://127.0.0.1:8090 (GSD_GAINSIGHT_BASE_URL) "
        "instead of each destination's domain",
    ]


def test_the_permission_hint_in_a_container_says_to_fix_the_host_directory() -> None:
    uid = os.getuid()
    hint = uid_hint(Path("/var/lib/gsd"), container=True)
    assert f"uid {uid}" in hint and "/var/lib/gsd is a path inside this container" in hint
    assert f"on the host, run `chown {uid} HOST_DIR`" in hint and "-v HOST_DIR:/var/lib/gsd" in hint
    assert uid_hint(Path("/srv/gsd"), container=False).endswith(f"(chown {uid} /srv/gsd)")


def test_a_redirected_sandbox_does_not_claim_that_nothing_leaves_the_machine() -> None:
    settings = Settings(gainsight_base_url="http://gainsight.test:9999")
    text = banner(memory_app(settings), "127.0.0.1", 8080, settings)
    assert "nothing leaves this machine" not in text
    assert "delivered to http://gainsight.test:9999 (GSD_GAINSIGHT_BASE_URL)" in text
    assert "Gainsight calls are redirected to http://gainsight.test:9999" in text


def test_the_simulator_alone_keeps_every_flag_whole_at_80_columns() -> None:
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "destination.simulator", "--help"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "--rate-limit-per-minute" in result.stdout and "…" not in result.stdout
