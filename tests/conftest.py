from __future__ import annotations

from typing import Any

import pytest

from destination.config import DestinationConfig, parse_destination_config
from destination.mapping.spec import Specs, default_specs

DOMAIN = "acme.gainsightcloud.com"

BASE_CONFIG: dict[str, Any] = {
    "domain": DOMAIN,
    "accessKey": "ak-123",
    "sharedSecret": "ss-456",
    "tenantId": "tenant-1",
    "topicName": "Support",
    "eventNameMap": [{"from": "Ticket Closed", "to": "ticket_closed"}],
    "eventVersionMap": [{"from": "Ticket Closed", "to": "1.0"}],
    "personMap": [{"from": "seats", "to": "Seats__gc"}, {"from": "a.b", "to": "Dotted__gc"}],
    "companyMap": [{"from": "region", "to": "Region__gc"}],
}


def make_config(**overrides: Any) -> DestinationConfig:
    return parse_destination_config({**BASE_CONFIG, **overrides})


@pytest.fixture(scope="session")
def specs() -> Specs:
    return default_specs()


@pytest.fixture
def config() -> DestinationConfig:
    return make_config()
