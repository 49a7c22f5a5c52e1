"""Shared helpers for the simulator tests: a fake clock, clients, signed events, seed data."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from fastapi.testclient import TestClient

from destination.simulator import SANDBOX, SimulatorConfig, create_simulator_app

# A UTC midnight, so minute and day windows both start here.
T0 = 1_700_006_400.0
ACCESS = {"Accesskey": SANDBOX.access_key}
PEOPLE = "/v1.0/api/people"
PEOPLE_ALT = "/v1/peoplemgmt/v1.0/people"
COMPANY = "/v1/data/objects/Company"
QUERY = "/v1/data/objects/query/Company"
EVENTS = "/v1.0/api/eventManager/event"


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def sim_client(config: SimulatorConfig | None = None, clock: FakeClock | None = None) -> Iterator[TestClient]:
    app = create_simulator_app(config or SimulatorConfig.sandbox(), clock=clock or FakeClock())
    with TestClient(app) as client:
        yield client


def event_headers(**overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "sharedSecret": SANDBOX.shared_secret,
        "tenantId": SANDBOX.tenant_id,
        "topicName": SANDBOX.topic,
        "eventName": "ticket_closed",
        "eventVersion": "1.0",
        **overrides,
    }
    return {k: v for k, v in headers.items() if v is not None}


def canonical_sha256(body: Any) -> str:
    """Written independently of the simulator: sorted keys, no whitespace, UTF-8."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def sign(
    body: Any,
    headers: dict[str, str],
    *,
    now: float = T0,
    ttl: float = 300,
    secret: str = SANDBOX.shared_secret,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": str(uuid.uuid4()),
        "tenantId": headers.get("tenantId"),
        "topicName": headers.get("topicName"),
        "eventName": headers.get("eventName"),
        "eventVersion": headers.get("eventVersion"),
        "body_sha256": canonical_sha256(body),
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}  # a None claim is left out
    return jwt.encode(payload, secret, algorithm=algorithm)


def insert_company(client: TestClient, **fields: Any) -> str:
    response = client.post(COMPANY, headers=ACCESS, json={"records": [fields]})
    assert response.status_code == 200, response.text
    gsid: str = response.json()["data"]["records"][0]["Gsid"]
    return gsid


def query(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post(QUERY, headers=ACCESS, json=body)


def names_where(
    client: TestClient, *conditions: dict[str, Any], expression: str | None = None, **extra: Any
) -> list[str]:
    where: dict[str, Any] = {"conditions": list(conditions)}
    if expression is not None:
        where["expression"] = expression
    response = query(client, {"select": ["Name"], "where": where, **extra})
    assert response.status_code == 200, response.text
    return [row["Name"] for row in response.json()["data"]["records"]]


def cond(name: str, operator: str, *values: Any, alias: str | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"name": name, "operator": operator, "value": list(values)}
    if alias is not None:
        condition["alias"] = alias
    return condition
