"""`timeline` in validate-config and in the dry run (CLI `transform`, `POST /v1/transform`): the
problems named, and the planned activity shown with its company resolved at delivery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from destination.cli import app
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, DOMAIN, memory_app
from tests.gainsight_fake import StrictGainsight

runner = CliRunner()
TIMELINE = {"author": "csm@acme.com", "activities": [{"event": "Meeting Booked", "type": "Meeting"}]}
MEETING = {
    "type": "track",
    "event": "Meeting Booked",
    "messageId": "m-7",
    "userId": "u1",
    "timestamp": "2026-12-06T10:00:00Z",
    "properties": {"topic": "renewal"},
    "context": {"groupId": "001"},
}


def validate(tmp_path: Path, **config: Any) -> Any:
    path = tmp_path / "d.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "config": {**BASE_CONFIG, **config}}]))
    return runner.invoke(app, ["validate-config", "--destinations", str(path)])


def test_a_valid_timeline_passes(tmp_path: Path) -> None:
    result = validate(tmp_path, timeline=TIMELINE)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("timeline", "named"),
    [
        ({**TIMELINE, "author": "not an email"}, "timeline.author"),
        (
            {
                **TIMELINE,
                "activities": [*TIMELINE["activities"], {"event": "Meeting Booked", "type": "Call"}],
            },
            "listed twice",
        ),
        (
            {**TIMELINE, "activities": [{"event": "Meeting Booked"}]},
            "timeline.activities[0].type: Field required",
        ),
        ({**TIMELINE, "activities": [{"event": "X", "type": "Call", "alsopublish": True}]}, "alsopublish"),
    ],
)
def test_validate_config_names_a_bad_timeline(tmp_path: Path, timeline: dict[str, Any], named: str) -> None:
    result = validate(tmp_path, timeline=timeline)
    assert result.exit_code == 2 and named in result.output, result.output


def test_an_event_both_in_the_timeline_and_counted_is_named(tmp_path: Path) -> None:
    usage = {
        "object": "ProductUsage__gc",
        "fields": {"company": "Company__gc", "date": "Day__gc", "metric": "Metric__gc", "count": "Count__gc"},
        "events": ["Meeting Booked"],
    }
    result = validate(tmp_path, timeline=TIMELINE, usage=usage)
    assert result.exit_code == 2 and "'Meeting Booked' is also a timeline activity" in result.output


def test_also_publish_needs_the_events_maps_and_track_settings(tmp_path: Path) -> None:
    published = {
        **TIMELINE,
        "activities": [{"event": "Meeting Booked", "type": "Meeting", "alsoPublish": True}],
    }
    result = validate(tmp_path, timeline=published, sharedSecret=None, eventNameMap=[], eventVersionMap=[])
    assert result.exit_code == 2
    where = "timeline.activities[0] (Meeting Booked): alsoPublish needs"
    assert f"{where} an entry for it in eventNameMap and eventVersionMap" in result.output
    assert f"{where} sharedSecret, which the config lacks" in result.output


def test_timeline_activities_need_the_access_key(tmp_path: Path) -> None:
    result = validate(tmp_path, timeline=TIMELINE, accessKey=None)
    assert result.exit_code == 2 and "timeline activities need accessKey, which is missing" in result.output


def test_the_cli_dry_run_shows_the_activity_with_its_company_resolved_at_delivery(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    identity = {"field": "SfdcAccountId", "from": "groupId"}
    path.write_bytes(orjson.dumps({**BASE_CONFIG, "timeline": TIMELINE, "companyIdentity": identity}))
    result = runner.invoke(app, ["transform", "--config", str(path)], input=orjson.dumps(MEETING).decode())
    assert result.exit_code == 0, result.output
    [planned] = [orjson.loads(line) for line in result.output.splitlines() if line.strip()]
    assert planned["sink"] == "timeline"
    assert planned["company"] == {
        "gsid": "resolved at delivery",
        "from": "the person's last group event",
        "else": {"key": "SfdcAccountId", "value": "001"},
    }
    [request] = planned["requests"]
    assert (request["step"], request["method"], request["endpoint"]) == (
        "timeline activity",
        "POST",
        f"https://{DOMAIN}/v1/ant/es/activity",
    )
    assert request["headers"]["Accesskey"] == "***" and "ak-123" not in result.output
    assert request["body"] == {
        "records": [
            {
                "ExternalId": "m-7",
                "ContextName": "Company",
                "TypeName": "Meeting",
                "Subject": "Meeting Booked",
                "ActivityDate": 1_796_551_200_000,
                "Author": "csm@acme.com",
                "Notes": "topic: renewal",
                "GsCompanyId": "resolved at delivery",
            }
        ],
        "lookups": {},
    }


def test_the_http_dry_run_shows_the_activity_then_its_publish_and_an_unplannable_one(tmp_path: Path) -> None:
    timeline = {**TIMELINE, "activities": [{"event": "Ticket Closed", "type": "Update", "alsoPublish": True}]}
    destinations = tmp_path / "d.json"
    config = {**BASE_CONFIG, "timeline": timeline}
    destinations.write_bytes(
        orjson.dumps({"destinations": [{"id": "acme", "writeKeys": ["wk"], "config": config}]})
    )
    fake = StrictGainsight()
    closed = {**MEETING, "event": "Ticket Closed"}
    undated = {k: v for k, v in closed.items() if k != "timestamp"}
    misdated = {**closed, "timestamp": "yesterday"}
    with TestClient(memory_app(Settings(destinations=destinations), transport=fake.transport())) as client:
        response = client.post("/v1/transform", json={"batch": [closed, undated, misdated]}, auth=("wk", ""))
    assert response.status_code == 200, response.text
    planned, received, refused = response.json()["results"]
    assert [r["step"] for r in planned["requests"]] == ["timeline activity", "event publish"]
    assert planned["requests"][1]["when"] == "once the activity is written (alsoPublish)"
    assert received["requests"][0]["body"]["records"][0]["ActivityDate"] == "when received"
    assert refused["error"] == "timestamp must be an ISO 8601 time, got 'yesterday'"
    assert fake.calls == [] and fake.unexpected == []


def test_the_status_page_shows_the_timeline_minute_beside_the_sync_windows() -> None:
    settings = Settings(admin_token="t0ken", timeline_rate_limit_per_minute=150)
    with TestClient(memory_app(settings), base_url="http://127.0.0.1") as client:
        page = client.get("/status", headers={"Authorization": "Bearer t0ken"}).text
    assert '<th>this minute</th><td class="n">0 / 100</td>' in page
    assert '<th>this timeline minute</th><td class="n">0 / 150</td>' in page
