"""What a test needs from the machine: skipped where it is missing, failed under CI.

`.ci/run` installs PostgreSQL and Chromium and lays shared/ beside the checkout, so under CI (the
CI variable set to 1, true or yes) a missing one is a broken setup, never a silent skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it under CI."""
    if under_ci():
        pytest.fail(message + " (required under CI)")
    pytest.skip(message)
