from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from destination.simulator import Simulator
from tests.simulator.helpers import FakeClock, sim_client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> Iterator[TestClient]:
    with sim_client(clock=clock) as test_client:
        yield test_client


@pytest.fixture
def sim(client: TestClient) -> Simulator:
    simulator: Simulator = client.app.state.simulator  # type: ignore[attr-defined]
    return simulator
