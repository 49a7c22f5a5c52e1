"""`gainsight-destination capacity`: the forecast from the store, one JSON line per destination."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
from typer.testing import CliRunner

from destination.cli import app
from destination.delivery.store import NewEvent
from destination.delivery.stores import open_store
from tests.conftest import BASE_CONFIG

runner = CliRunner()


def seeded(tmp_path: Path) -> tuple[str, Path]:
    """`loud` received 100 tracks in the last hour, `quiet` one identify; nothing delivered."""
    url = f"sqlite:///{tmp_path}/gsd.sqlite3"
    now = time.time()

    def event(destination: str, n: int, kind: str) -> NewEvent:
        body = {"type": kind, "userId": f"u{n}", "messageId": f"m{n}", "event": "Report Exported"}
        return NewEvent(destination, f"m{n}", f"userId:u{n}", kind, orjson.dumps(body), now - 3000 + n)

    async def seed() -> None:
        store = open_store(url)
        await store.enqueue([event("loud", n, "track") for n in range(100)] + [event("quiet", 0, "identify")])
        await store.close()

    asyncio.run(seed())
    path = tmp_path / "destinations.json"
    path.write_bytes(
        orjson.dumps(
            [
                {"id": "loud", "config": {**BASE_CONFIG, "domain": "loud.gainsightcloud.com"}},
                {"id": "quiet", "config": {**BASE_CONFIG, "domain": "quiet.gainsightcloud.com"}},
            ]
        )
    )
    return url, path


def test_capacity_prints_each_destinations_forecast(tmp_path: Path) -> None:
    url, path = seeded(tmp_path)
    result = runner.invoke(
        app,
        ["capacity", "--store", url, "--destinations", str(path)],
        env={"GSD_RATE_LIMIT_PER_DAY": "1000"},
    )
    assert result.exit_code == 0, result.output
    loud, quiet = (orjson.loads(line) for line in result.stdout.splitlines())
    assert (loud["destination"], loud["fits"], loud["callsNeededPerDay"], loud["dailyBudget"]) == (
        "loud",
        False,
        2400,
        1000,
    )
    assert loud["backlogEvents"] == 100 and loud["backlogClearsInSeconds"] is None
    assert loud["byEvent"][0]["lever"] == "usage"
    assert (quiet["destination"], quiet["fits"], quiet["backlogEvents"]) == ("quiet", True, 1)

    one = runner.invoke(
        app, ["capacity", "--store", url, "--destinations", str(path), "--destination", "quiet"]
    )
    assert [orjson.loads(line)["destination"] for line in one.stdout.splitlines()] == ["quiet"]


def test_capacity_needs_the_destinations_file_and_a_known_destination(tmp_path: Path) -> None:
    url, path = seeded(tmp_path)
    missing = runner.invoke(app, ["capacity", "--store", url], env={"GSD_DESTINATIONS": ""})
    assert missing.exit_code == 2
    assert "needs the destinations file" in missing.output
    unknown = runner.invoke(
        app, ["capacity", "--store", url, "--destinations", str(path), "--destination", "x"]
    )
    assert unknown.exit_code == 2
    assert "no destination with id 'x'" in unknown.output
