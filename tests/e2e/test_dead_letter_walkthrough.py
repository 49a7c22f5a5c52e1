"""The README's retry schedule and its "see a dead letter within a minute" walkthrough, run as
written: its curl lines against a sandbox `serve`, its CLI lines on the same store."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from destination.delivery.retry import RetryPolicy
from destination.settings import Settings
from tests.e2e.servers import running, wait_for
from tests.e2e.test_sandbox import perform

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def walkthrough() -> list[str]:
    """The command lines of the README's walkthrough (comments dropped)."""
    block = README.split("**See a dead letter within a minute**", 1)[1].split("```sh\n", 1)[1]
    lines = block.split("\n```", 1)[0].splitlines()
    commands = [line.split("  #", 1)[0].strip() for line in lines]
    return [c for c in commands if c and not c.startswith("#")]


def test_the_readme_states_the_time_to_a_dead_letter_the_code_gives() -> None:
    policy = RetryPolicy(max_attempts=Settings().max_attempts)
    waits = [policy.backoff_ceiling(n) for n in range(1, policy.max_attempts)]  # none after the last
    assert (policy.base_seconds, policy.cap_seconds) == (1.0, 600.0)
    assert sum(waits) == 1_023 + 9 * 600 == 6_423  # "at most 6,423 s": every wait at its ceiling
    assert "**6,423 s (1 h 47 min)**" in README
    assert f"**{sum(waits) / 2:,} s (about 54 min)**" in README  # each wait's mean: half its ceiling
    assert Settings().max_attempts == 20 and Settings().max_age_seconds == 86_400


def cli(workdir: Path, words: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GSD_STORE_URL", None)  # the CLI's default: the sandbox's ./data/gsd.sqlite3
    return subprocess.run(
        [sys.executable, "-m", "destination", *words[1:]],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_dead_letter_walkthrough_works_as_written(tmp_path: Path) -> None:
    lines = walkthrough()
    serve, rest = lines[0], lines[1:]
    assert serve == "GSD_MAX_ATTEMPTS=3 gainsight-destination serve"
    env = {"GSD_DESTINATIONS": "", "GSD_MAX_ATTEMPTS": "3", "GSD_STORE_URL": "sqlite:///./data/gsd.sqlite3"}
    with running(["serve"], ready_path="/health", workdir=tmp_path, env=env) as server:
        seen: dict[str, Any] = {}
        for line in rest:
            if line.startswith("curl "):
                answer = perform(line, server.base_url)
                assert answer.status_code == 200, answer.text
            elif line.startswith("sleep 5; "):  # a person waits; the test polls instead
                words = shlex.split(line.removeprefix("sleep 5; "))
                seen["dl-503"] = wait_for(lambda w=words: _dead(cli(tmp_path, w)), timeout=60)
            elif line == "gainsight-destination dead-letters list":
                seen["list"] = wait_for(lambda w=line.split(): _lines(cli(tmp_path, w)))
            else:
                assert line == "gainsight-destination dead-letters replay --all"
                replayed = cli(tmp_path, line.split())
                assert replayed.stdout.strip() == "replayed 2 dead letter(s)", replayed.stderr
        assert [d["messageId"] for d in seen["list"]] == ["dl-400"]
        assert "Gainsight answered 400" in seen["list"][0]["reason"]
        event = seen["dl-503"]
        assert event["reason"].startswith("gave up after 3 attempts")
        assert [(a["outcome"], a["status"]) for a in event["attempts"]] == [("retryable", 503)] * 3
        for message_id in ("dl-400", "dl-503"):
            show = ["gainsight-destination", "events", "show", message_id]
            wait_for(lambda s=show: json.loads(cli(tmp_path, s).stdout)["state"] == "delivered", timeout=60)


def _lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _dead(result: subprocess.CompletedProcess[str]) -> dict[str, Any] | None:
    found = _lines(result)
    return found[0] if found and found[0]["state"] == "dead" else None
