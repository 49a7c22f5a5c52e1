"""The command line: transform (offline dry run), validate-config, dead-letters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from destination.cli import app
from destination.delivery.store import Attempt, NewEvent
from destination.delivery.stores import open_store
from destination.jsonutil import dumps
from tests.conftest import BASE_CONFIG
from tests.delivery.conftest import claim_events

runner = CliRunner()
IDENTIFY = {"type": "identify", "messageId": "m1", "traits": {"email": "ada@example.com", "plan": "gold"}}
TRACK = {"type": "track", "event": "Ticket Closed", "messageId": "m2", "properties": {"a": 1}}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(BASE_CONFIG))
    return path


def lines(output: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


def test_transform_json_lines_from_stdin(config_file: Path) -> None:
    stdin = dumps(IDENTIFY).decode() + "\n\n" + dumps(TRACK).decode() + "\n"
    result = runner.invoke(app, ["transform", "--config", str(config_file)], input=stdin)
    assert result.exit_code == 0, result.output
    identify, track = lines(result.stdout)
    assert identify["type"] == "identify" and identify["messageId"] == "m1"
    request = identify["requests"][0]  # type: ignore[index]
    assert request["endpoint"] == "https://acme.gainsightcloud.com/v1.0/api/people"
    assert request["headers"]["Accesskey"] == "***"
    assert identify["diagnostics"] == [{"field": "traits.plan", "problem": "dropped: not in personMap"}]
    assert track["requests"][0]["headers"]["sharedSecret"] == "***"  # type: ignore[index]
    assert "ak-123" not in result.stdout and "ss-456" not in result.stdout


def test_transform_json_array_file_and_exit_code_on_error(config_file: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_bytes(
        orjson.dumps([IDENTIFY, {"type": "identify", "traits": {}}, {**TRACK, "event": "Nope"}])
    )
    result = runner.invoke(app, ["transform", str(events), "--config", str(config_file)])
    assert result.exit_code == 1
    ok, bad, filtered = lines(result.stdout)
    assert "requests" in ok
    assert bad == {
        "index": 1,
        "messageId": None,
        "error": "email is required for identify",
        "statusCode": 400,
    }
    assert filtered["filtered"] == "Event name mapping not provided for Nope"


def test_transform_from_a_destinations_file(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "destinations:\n  - id: acme\n    config:\n      domain: x.gainsightcloud.com\n      accessKey: k\n"
    )
    result = runner.invoke(app, ["transform", "--destinations", str(path)], input=dumps(IDENTIFY).decode())
    assert result.exit_code == 0 and "x.gainsightcloud.com" in result.stdout


def test_transform_without_settings_uses_the_sandbox_destination() -> None:
    result = runner.invoke(app, ["transform"], input=dumps({**TRACK, "event": "Ticket Closed"}).decode())
    assert result.exit_code == 0 and "ticket_closed" in result.stdout


def test_transform_bad_input_is_a_clear_error(config_file: Path) -> None:
    result = runner.invoke(
        app, ["transform", "--config", str(config_file)], input='{"type": "identify"\nnot json\n'
    )
    assert result.exit_code == 2 and "line 1: not valid JSON" in result.output


def test_validate_config(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
    result = runner.invoke(app, ["validate-config", "--destinations", str(good)])
    assert result.exit_code == 0 and "destination acme" in result.output and "ok" in result.output
    bad = tmp_path / "bad.json"
    bad.write_bytes(
        orjson.dumps([{"id": "acme", "config": {**BASE_CONFIG, "personMap": [{"from": "a", "to": "B"}]}}])
    )
    result = runner.invoke(app, ["validate-config", "--destinations", str(bad)])
    assert result.exit_code == 2 and "personMap[0].to" in result.output


def test_dead_letters_list_show_replay_purge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gsd.sqlite3"

    async def seed() -> None:
        store = open_store(url)
        await store.enqueue(
            [NewEvent("acme", f"m{i}", f"p{i}", "identify", dumps(IDENTIFY), 1.0) for i in range(3)]
        )
        for event in await claim_events(store, 2.0, 3, 60):
            aborted = Attempt(2.0, "aborted", 400, "bad", {"errorCode": "X"})
            reason = "Gainsight answered 400 X"
            assert await store.dead_letter(event.id, reason, lease=event.lease, attempt=aborted)
        await store.close()

    asyncio.run(seed())
    listed = runner.invoke(app, ["dead-letters", "list", "--store", url])
    assert listed.exit_code == 0 and len(lines(listed.stdout)) == 3
    shown = runner.invoke(app, ["dead-letters", "show", "1", "--store", url])
    detail = lines(shown.stdout)[0]
    assert detail["reason"] == "Gainsight answered 400 X" and detail["attempts"][0]["response"] == {
        "errorCode": "X"
    }  # type: ignore[index]
    assert runner.invoke(app, ["dead-letters", "show", "99", "--store", url]).exit_code == 2
    assert "replayed 1" in runner.invoke(app, ["dead-letters", "replay", "2", "--store", url]).output
    nothing = runner.invoke(app, ["dead-letters", "purge", "--store", url])
    assert nothing.exit_code == 2 and "nothing selected" in nothing.output
    assert len(lines(runner.invoke(app, ["dead-letters", "list", "--store", url]).stdout)) == 2
    assert "purged 2" in runner.invoke(app, ["dead-letters", "purge", "--all", "--store", url]).output
    empty = runner.invoke(app, ["dead-letters", "list", "--store", url])
    assert empty.exit_code == 0 and empty.stdout.strip() == ""  # stdout stays JSON lines only
    assert empty.stderr.strip() == f"no dead letters in {url}"
    other = runner.invoke(app, ["dead-letters", "list", "--store", url, "--destination", "beta"])
    assert other.stderr.strip() == f"no dead letters for destination 'beta' in {url}"


def test_dead_letter_ids_out_of_range_are_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gsd.sqlite3"
    asyncio.run(_empty_store(url))
    for args in (["show", str(2**63)], ["show", "abc"], ["replay", str(2**64)], ["purge", "0"]):
        result = runner.invoke(app, ["dead-letters", *args, "--store", url])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output


async def _empty_store(url: str) -> None:
    await open_store(url).close()


def test_events_show_and_list_any_event_with_its_attempts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/gsd.sqlite3"

    async def seed() -> None:
        store = open_store(url)
        await store.enqueue(
            [
                NewEvent("acme", "m1", "ada", "identify", dumps(IDENTIFY), 1_700_000_000.0),
                NewEvent("acme", "m2", "bob", "identify", dumps(IDENTIFY), 1_700_000_000.0),
                NewEvent("globex", "m2", "bob", "identify", dumps(IDENTIFY), 1_700_000_000.0),
            ]
        )
        (first, *_) = await claim_events(store, 1_700_000_001.0, 1, 60)
        request = {"method": "PUT", "url": "https://x/v1.0/api/people", "headers": {"Accesskey": "***"}}
        delivered = Attempt(1_700_000_001.5, "delivered", 200, None, {}, request, "c1")
        assert await store.complete(first.id, "delivered", lease=first.lease, attempt=delivered)
        await store.close()

    asyncio.run(seed())
    shown = runner.invoke(app, ["events", "show", "m1", "--store", url])
    assert shown.exit_code == 0, shown.output
    view = lines(shown.stdout)[0]
    assert (view["state"], view["receivedAt"]) == ("delivered", "2023-11-14T22:13:20.000Z")
    assert view["attempts"] == [  # type: ignore[comparison-overlap]
        {
            "at": "2023-11-14T22:13:21.500Z",
            "outcome": "delivered",
            "status": 200,
            "request": {"method": "PUT", "url": "https://x/v1.0/api/people", "headers": {"Accesskey": "***"}},
            "response": {},
            "call": "c1",
        }
    ]
    ambiguous = runner.invoke(app, ["events", "show", "m2", "--store", url])
    assert ambiguous.exit_code == 2 and "acme, globex" in ambiguous.output
    assert lines(
        runner.invoke(app, ["events", "show", "m2", "--destination", "globex", "--store", url]).stdout
    )
    missing = runner.invoke(app, ["events", "show", "nope", "--store", url])
    assert missing.exit_code == 2 and "no event with messageId 'nope'" in missing.output

    queued = lines(runner.invoke(app, ["events", "list", "--state", "queued", "--store", url]).stdout)
    assert [(e["destination"], e["messageId"], e["attempts"]) for e in queued] == [  # type: ignore[index]
        ("acme", "m2", 0),
        ("globex", "m2", 0),
    ]
    bad_state = runner.invoke(app, ["events", "list", "--state", "lost", "--store", url])
    assert bad_state.exit_code == 2 and "expected one of" in bad_state.output


def test_unknown_store_url_is_a_clear_error() -> None:
    result = runner.invoke(app, ["dead-letters", "list", "--store", "mysql://u:pw@h/db"])
    assert result.exit_code == 2 and "unknown store URL" in result.output and "pw" not in result.output


def test_a_postgresql_store_out_of_reach_is_a_clear_error() -> None:
    from tests.e2e.servers import free_port

    url = f"postgresql://u:secret-pw@127.0.0.1:{free_port()}/db"  # nothing listens there
    result = runner.invoke(app, ["dead-letters", "list", "--store", url])
    assert result.exit_code == 2, result.output
    assert "cannot be reached" in result.output and "secret-pw" not in result.output
