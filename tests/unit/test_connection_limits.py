"""`serve` fits GSD_MAX_CONNECTIONS to the process's file limit (destination/connections.py): every
accepted connection holds a file descriptor, and a spent file limit stops the whole service."""

from __future__ import annotations

import logging
import resource

import pytest

from destination import connections
from destination.connections import FILES_RESERVED, ConnectionLimits, fit_file_limit, refusal

LIMITS = ConnectionLimits(max_connections=4096, header_timeout_seconds=10, max_header_bytes=65536)


class FileLimit:
    """A stand-in for the process's RLIMIT_NOFILE, so that the test never changes the real one."""

    def __init__(self, soft: int, hard: int, settable: bool = True) -> None:
        self.soft, self.hard, self.settable = soft, hard, settable

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if not self.settable or limits[0] > self.hard:
            raise ValueError("not allowed")
        self.soft = limits[0]


@pytest.fixture
def file_limit(monkeypatch: pytest.MonkeyPatch) -> FileLimit:
    fake = FileLimit(1024, 1024)
    monkeypatch.setattr(connections.resource, "getrlimit", fake.getrlimit)
    monkeypatch.setattr(connections.resource, "setrlimit", fake.setrlimit)
    return fake


def test_the_soft_limit_is_raised_when_the_hard_one_allows(file_limit: FileLimit) -> None:
    file_limit.hard = 1_048_576
    assert fit_file_limit(LIMITS) == LIMITS
    assert file_limit.soft == 4096 + FILES_RESERVED


def test_connections_are_lowered_to_what_the_file_limit_holds(
    file_limit: FileLimit, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        fitted = fit_file_limit(LIMITS)
    assert fitted.max_connections == 1024 - FILES_RESERVED
    assert fitted.header_timeout_seconds == 10 and fitted.max_header_bytes == 65536
    assert "connection limit lowered" in caplog.text


def test_a_limit_that_fits_is_left_alone(file_limit: FileLimit) -> None:
    file_limit.soft = file_limit.hard = 100_000
    assert fit_file_limit(LIMITS) == LIMITS and file_limit.soft == 100_000


def test_a_refusal_is_a_complete_answer_that_closes() -> None:
    answer = refusal(431, "Request Header Fields Too Large", "request head is larger than 8 bytes")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"connection: close" in head and f"content-length: {len(body)}".encode() in head
    assert body == b'{"code":"request_head_too_large","message":"request head is larger than 8 bytes",' + (
        b'"error":"request head is larger than 8 bytes"}'
    )
