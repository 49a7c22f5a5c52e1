"""DESIGN §3.5: one pure table decides delivered / throttled / retryable / aborted."""

from __future__ import annotations

from typing import Any

import pytest

from destination.gainsight.outcomes import Answer, classify, failure, retry_after_seconds


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {"result": True}, "delivered"),
        (201, None, "delivered"),
        (200, {"result": False, "errorCode": "X"}, "aborted"),
        (429, {"errorCode": "GU_2400"}, "throttled"),
        (500, {"errorCode": "GU_1101"}, "retryable"),
        (502, None, "retryable"),
        (504, None, "retryable"),
        (400, {"errorCode": "GSOBJ_1002"}, "aborted"),
        (401, {"errorCode": "GS_APIG_2401"}, "aborted"),
        (401, {"result": False, "errorCode": "GSSIG_REPLAY"}, "delivered"),
        (404, None, "aborted"),
        (None, None, "retryable"),
    ],
)
def test_classify(status: int | None, body: Any, outcome: str) -> None:
    assert classify(Answer(status, body)) == outcome


def test_failure_keeps_gainsight_error_code_and_desc() -> None:
    error = failure(
        Answer(400, {"result": False, "errorCode": "GSOBJ_PEOPLE1001", "errorDesc": "company missing"}),
        "person upsert",
        0,
    )
    assert (error.outcome, error.error_code, error.error_desc) == (
        "aborted",
        "GSOBJ_PEOPLE1001",
        "company missing",
    )
    assert error.message == "person upsert failed: Gainsight answered 400 GSOBJ_PEOPLE1001: company missing"


def test_transport_failure_message() -> None:
    error = failure(Answer(None, transport_error="timed out"), "event publish", 0)
    assert error.outcome == "retryable" and "timed out" in error.message


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, 40.0),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, now=60.0) == seconds
