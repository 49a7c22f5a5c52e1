"""Process-wide collector tuning is serve's alone (issue 20): create_app leaves the collector as
Python has it, and `tune_gc` applies GSD_GC_YOUNG_THRESHOLD (0: Python's own) and freezes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from destination.serving import tune_gc
from destination.settings import Settings
from tests.conftest import memory_app


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_create_app_leaves_the_collector_alone(restored_gc: None) -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with TestClient(memory_app(Settings()), base_url="http://127.0.0.1"):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == frozen


def test_serve_s_tuning_sets_the_young_threshold_and_freezes(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(100_000)
    assert gc.get_threshold() == (100_000, 10, 10)
    assert gc.get_freeze_count() > 0


def test_zero_keeps_python_s_threshold(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)
