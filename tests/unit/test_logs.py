"""The log formatter: one line per record, `extra` fields as keys, uvicorn's access log alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from destination.logs import configure_logging, log_event_outcome


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_extra_fields_become_json_keys(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    log_event_outcome(
        destination="acme",
        message_id="m1",
        kind="track",
        outcome="dead",
        status=401,
        attempts=2,
        latency=1.23456,
    )
    (line,) = lines(stream)
    record = json.loads(line)
    assert record.pop("time").endswith("Z")
    assert record == {
        "level": "warning",
        "logger": "destination.events",
        "message": "event outcome",
        "destination": "acme",
        "messageId": "m1",
        "type": "track",
        "outcome": "dead",
        "status": 401,
        "attempts": 2,
        "latency": 1.235,
    }


def test_an_exception_stays_on_one_line(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("destination.test").exception("failed")
    (line,) = lines(stream)
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_uvicorns_access_log_is_split_into_fields(stream: io.StringIO) -> None:
    configure_logging("info", "json", stream)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200
    )
    record = json.loads(lines(stream)[0])
    assert (record["method"], record["path"], record["status"], record["client"]) == (
        "GET",
        "/health",
        200,
        "127.0.0.1:5000",
    )


def test_text_format_and_level(stream: io.StringIO) -> None:
    configure_logging("warning", "text", stream)
    logging.getLogger("destination.test").info("hidden")
    logging.getLogger("destination.test").warning(
        "shown", extra={"destination": "acme", "reason": "two words"}
    )
    (line,) = lines(stream)
    assert line.endswith('WARNING destination.test: shown destination=acme reason="two words"')


def test_library_chatter_is_kept_below_warning(stream: io.StringIO) -> None:
    configure_logging("debug", "json", stream)
    logging.getLogger("httpx").info("HTTP Request: PUT https://acme.gainsightcloud.com/v1.0/api/people")
    logging.getLogger("httpcore.http11").debug("send_request_headers.started")
    assert lines(stream) == []
