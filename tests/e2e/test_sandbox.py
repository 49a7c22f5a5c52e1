"""Sandbox mode: `serve` with nothing configured embeds the simulator; the README's curl lines
(and the ones `serve` prints) deliver identify, group and track into its state."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import Server, running, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("sandbox")
    # The tests reset the simulator under the service, so it must not skip writes it remembers
    # having delivered (GSD_UNCHANGED_TTL_SECONDS=0); Gsids it remembers are found stale and redone.
    env = {"GSD_DESTINATIONS": "", "GSD_UNCHANGED_TTL_SECONDS": "0"}
    with running(["serve"], ready_path="/health", workdir=workdir, env=env) as server:
        yield server


def curl_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("curl -s")]


def perform(line: str, base_url: str) -> httpx.Response:
    """Run one documented curl line with httpx (same method, URL, headers and body)."""
    words = shlex.split(line)[1:]
    method, headers, data, url = "GET", {}, None, ""
    while words:
        word = words.pop(0)
        if word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            data = words.pop(0)
        elif word.startswith("http") and not url:
            url = word
    path = url.split("://", 1)[1].split("/", 1)[1]
    return httpx.request(method, f"{base_url}/{path}", headers=headers, content=data, timeout=10)


def sim(base_url: str, what: str) -> Any:
    return httpx.get(f"{base_url}/gainsight/__sim/{what}", timeout=5).json()


def test_serve_says_it_is_in_sandbox_mode_and_prints_curl_lines(sandbox: Server) -> None:
    output = sandbox.output()
    assert "SANDBOX MODE" in output
    assert len([line for line in curl_lines(output) if "-X POST" in line]) == 4


@pytest.mark.parametrize("source", ["readme", "banner"])
def test_documented_curl_lines_arrive_in_the_simulator(sandbox: Server, source: str) -> None:
    httpx.post(f"{sandbox.base_url}/gainsight/__sim/reset").raise_for_status()
    # The README's quickstart (later sections have curl lines of their own, e.g. faults).
    quickstart = README.read_text().split("\n## ", 2)[1]
    text = quickstart if source == "readme" else sandbox.output()
    posts = [line for line in curl_lines(text) if "-X POST" in line]
    assert len(posts) == 4
    for line in posts:
        response = perform(line, sandbox.base_url)
        assert response.status_code == 200, response.text
    people = wait_for(lambda: [p for p in sim(sandbox.base_url, "people") if p.get("companies")])
    companies = sim(sandbox.base_url, "companies")
    assert people[0]["Email"] == "ada@example.com" and people[0]["Seats__gc"] == 5
    assert companies[0]["Name"] == "Acme Ltd" and companies[0]["Region__gc"] == "EMEA"
    assert people[0]["companies"] == [{"Company_ID": companies[0]["Gsid"]}]
    events = wait_for(lambda: sim(sandbox.base_url, "events"))
    assert events[0]["eventName"] == "ticket_closed" and events[0]["signed"] is True
    # The counted event: a row of the usage object, written within seconds (sandbox flushes).
    usage = "objects/ProductUsage__gc"
    rows = wait_for(
        lambda: [r for r in sim(sandbox.base_url, usage) if r["Company__gc"] == companies[0]["Gsid"]]
    )
    assert [(r["Metric__gc"], r["Count__gc"]) for r in rows] == [("Report Exported", 1)]
    for line in curl_lines(text):
        if "-X POST" not in line:
            assert perform(line, sandbox.base_url).status_code == 200


def test_sandbox_needs_no_credentials_and_binds_loopback(sandbox: Server) -> None:
    assert "http://127.0.0.1:" in sandbox.output()
    assert httpx.get(f"{sandbox.base_url}/ready").json()["sandbox"] is True
