"""`events list --user`, `events retry` and what `events show` says an event waits for."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from typer.testing import CliRunner

from destination.cli import app
from destination.delivery.store import NewEvent
from destination.delivery.stores import open_store
from destination.jsonutil import dumps
from tests.delivery.conftest import claim_events

runner = CliRunner()


def lines(output: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


def seeded(tmp_path: Path, *, backoff: bool = False) -> str:
    """A store holding ada's identify and track (userId u1) and bob's track (anonymous); with
    `backoff`, ada's identify and bob's track failed and wait an hour for their retry."""
    url = f"sqlite:///{tmp_path}/gsd.sqlite3"
    now = time.time()
    identify = {"type": "identify", "userId": "u1", "traits": {"email": "Ada@Example.com"}}
    track = {"type": "track", "userId": "u1", "event": "Ticket Closed"}
    anonymous = {"type": "track", "anonymousId": "anon-9", "event": "Ticket Closed"}

    async def seed() -> None:
        store = open_store(url)
        await store.enqueue(
            [
                NewEvent("acme", "m1", "ada", "identify", dumps({**identify, "messageId": "m1"}), now),
                NewEvent("acme", "m2", "ada", "track", dumps({**track, "messageId": "m2"}), now),
                NewEvent("globex", "m3", "bob", "track", dumps({**anonymous, "messageId": "m3"}), now),
            ]
        )
        if backoff:  # a claim takes ada's track behind her identify: it goes back untried
            for claimed in await claim_events(store, now, 2, 60):
                later = now if claimed.message_id == "m2" else now + 3600
                await store.retry_later(claimed.id, later, None, lease=claimed.lease)
        await store.close()

    asyncio.run(seed())
    return url


def test_events_list_finds_a_persons_events_by_user_id_anonymous_id_or_email(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    by_id = lines(runner.invoke(app, ["events", "list", "--user", "u1", "--store", url]).stdout)
    assert [(e["messageId"], e["userId"], e["anonymousId"]) for e in by_id] == [
        ("m1", "u1", None),
        ("m2", "u1", None),
    ]
    by_email = lines(
        runner.invoke(app, ["events", "list", "--user", "ada@example.com", "--store", url]).stdout
    )
    assert [e["messageId"] for e in by_email] == ["m1"]  # the track carries no email
    anonymous = lines(runner.invoke(app, ["events", "list", "--user", "anon-9", "--store", url]).stdout)
    assert [(e["messageId"], e["destination"]) for e in anonymous] == [("m3", "globex")]
    assert runner.invoke(app, ["events", "list", "--user", "u2", "--store", url]).stdout == ""
    empty = runner.invoke(app, ["events", "list", "--user", "", "--store", url])
    assert empty.exit_code == 2 and "--user: expected a userId" in empty.output


def test_events_retry_makes_waiting_events_due_and_refuses_an_empty_selection(tmp_path: Path) -> None:
    url = seeded(tmp_path, backoff=True)
    shown = lines(runner.invoke(app, ["events", "show", "m1", "--store", url]).stdout)[0]
    assert shown["waitingFor"]["kind"] == "backoff"  # type: ignore[index]
    nothing = runner.invoke(app, ["events", "retry", "--store", url])
    assert nothing.exit_code == 2 and "nothing selected: name event ids" in nothing.output
    assert runner.invoke(app, ["events", "retry", "1", "--destination", "globex", "--store", url]).output == (
        "0 waiting event(s) due now\n"
    )
    retried = runner.invoke(app, ["events", "retry", "--destination", "acme", "--store", url])
    assert retried.exit_code == 0 and retried.output == "1 waiting event(s) due now\n"  # m1
    after = lines(runner.invoke(app, ["events", "show", "m1", "--store", url]).stdout)[0]
    assert after["waitingFor"] is None and after["state"] == "queued"
    everything = ["events", "retry", "--all", "--store", url]
    assert runner.invoke(app, everything).output == "1 waiting event(s) due now\n"  # globex's m3
    assert runner.invoke(app, everything).output == "0 waiting event(s) due now\n"
    mixed = runner.invoke(app, ["events", "retry", "--all", "1", "--store", url])
    assert mixed.exit_code == 2 and "--all selects everything" in mixed.output


def test_events_show_says_which_event_a_queued_one_waits_behind(tmp_path: Path) -> None:
    url = seeded(tmp_path, backoff=True)
    shown = lines(runner.invoke(app, ["events", "show", "m2", "--store", url]).stdout)[0]
    assert shown["state"] == "queued"
    assert shown["waitingFor"] == {"kind": "event", "messageId": "m1"}


def test_events_show_leaves_the_budget_out_when_the_destinations_file_cannot_be_read(tmp_path: Path) -> None:
    url = seeded(tmp_path, backoff=True)
    missing = tmp_path / "nowhere.yaml"
    shown = runner.invoke(app, ["events", "show", "m1", "--destinations", str(missing), "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "warning: the rate budget is left out of waitingFor" in shown.stderr
    assert lines(shown.stdout)[0]["waitingFor"]["kind"] == "backoff"  # type: ignore[index]


def test_events_show_says_when_the_budget_is_spent(tmp_path: Path) -> None:
    url = seeded(tmp_path, backoff=True)
    destinations = tmp_path / "destinations.json"
    destinations.write_bytes(
        orjson.dumps(
            {"destinations": [{"id": "acme", "writeKeys": ["k"], "config": {"domain": "acme.example"}}]}
        )
    )

    async def spend() -> None:
        store = open_store(url)
        now = time.time()
        day = 86_400.0
        assert await store.take_budget("acme.example", [("minute", now - now % day, 1000)], 990) is None
        await store.close()

    asyncio.run(spend())
    env = {"GSD_RATE_MINUTE_SECONDS": "86400", "GSD_RATE_LIMIT_PER_MINUTE": "1000"}  # a day-long window
    args = ["events", "show", "m1", "--destinations", str(destinations), "--store", url]
    waiting = lines(runner.invoke(app, args, env=env).stdout)[0]["waitingFor"]
    assert waiting["kind"] == "budget" and waiting["until"].endswith("T00:00:00.000Z")  # type: ignore[index]
