"""companyIdentity end to end (DESIGN §3.3): the real service delivering to the simulator over HTTP.
A rename stays one company, one name under two keys is two, update-only never inserts, and an
event whose company cannot be decided is rejected with its reason, visible to an admin."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.servers import (
    SIM_ACCESS_KEY,
    Server,
    get_json,
    queue_idle,
    sandbox_config,
    start_service,
    start_simulator,
    wait_for,
)

ADMIN_TOKEN = "admin-token-for-identity"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEYED = {"field": "SfdcAccountId", "from": "groupId", "create": True}
KEYS = {"keyed": "wk_keyed", "crm": "wk_crm"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with start_simulator(tmp_path_factory.mktemp("identity-sim")) as server:
        yield server


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, sim: Server) -> Iterator[Server]:
    destinations = [
        {"id": "keyed", "writeKeys": [KEYS["keyed"]], "config": sandbox_config(companyIdentity=KEYED)},
        {
            "id": "crm",
            "writeKeys": [KEYS["crm"]],
            "config": sandbox_config(companyIdentity={**KEYED, "create": False}),
        },
    ]
    workdir = tmp_path_factory.mktemp("identity")
    with start_service(workdir, destinations, sim.base_url, GSD_ADMIN_TOKEN=ADMIN_TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(sim: Server, service: Server) -> Iterator[None]:
    httpx.post(sim.base_url + "/__sim/reset", timeout=5.0).raise_for_status()
    yield
    wait_for(lambda: queue_idle(service), timeout=30)


def send(service: Server, destination: str, *events: dict[str, Any]) -> list[str]:
    batch = [{**e, "messageId": e.get("messageId") or uuid.uuid4().hex} for e in events]
    response = httpx.post(
        service.base_url + "/v1/batch", json={"batch": batch}, auth=(KEYS[destination], ""), timeout=10.0
    )
    assert response.status_code == 200, response.text
    return [e["messageId"] for e in batch]


def group(key: str, name: str | None, email: str = "ada@example.com", **traits: Any) -> dict[str, Any]:
    return {
        "type": "group",
        "userId": email,
        "groupId": key,
        "traits": {**({"name": name} if name else {}), **traits},
        "context": {"traits": {"email": email}},
    }


def companies(sim: Server) -> list[dict[str, Any]]:
    return sorted(get_json(sim, "/__sim/companies"), key=lambda c: (c.get("SfdcAccountId"), c.get("Name")))


def crm_company(sim: Server, key: str, name: str) -> str:
    """A company the CRM made, through Gainsight's own Company API."""
    response = httpx.post(
        sim.base_url + "/v1/data/objects/Company",
        json={"records": [{"Name": name, "SfdcAccountId": key}]},
        headers={"Accesskey": SIM_ACCESS_KEY},
        timeout=5.0,
    )
    response.raise_for_status()
    gsid: str = response.json()["data"]["records"][0]["Gsid"]
    return gsid


def final(service: Server, destination: str, message_id: str) -> dict[str, Any] | None:
    event: dict[str, Any] = get_json(service, f"/admin/events/{destination}/{message_id}", headers=ADMIN)
    return event if event["state"] not in ("queued", "leased") else None


def test_a_rename_updates_the_one_company_and_one_name_under_two_keys_is_two(
    sim: Server, service: Server
) -> None:
    send(service, "keyed", group("001A", "Acme"), group("G-1", "Globex", "bob@example.com"))
    wait_for(lambda: len(companies(sim)) == 2)
    last = send(service, "keyed", group("001A", "Acme Inc"), group("G-2", "Globex", "cy@example.com"))
    wait_for(lambda: final(service, "keyed", last[1]))
    wait_for(lambda: [c["Name"] for c in companies(sim)] == ["Acme Inc", "Globex", "Globex"])
    assert [c["SfdcAccountId"] for c in companies(sim)] == ["001A", "G-1", "G-2"]


def test_update_only_updates_the_crm_s_company_and_rejects_an_unknown_key(
    sim: Server, service: Server
) -> None:
    gsid = crm_company(sim, "001I", "Initech Corporation")
    known, unknown = send(service, "crm", group("001I", "Initech", employees=300), group("001X", "Nobody"))
    rejected = wait_for(lambda: final(service, "crm", unknown))
    assert rejected["state"] == "rejected"
    assert rejected["reason"] == "no Company with SfdcAccountId = 001X; creating companies is off"
    assert wait_for(lambda: final(service, "crm", known))["state"] == "delivered"
    (company,) = companies(sim)
    assert (company["Gsid"], company["Name"], company["Employees"]) == (gsid, "Initech Corporation", 300)


def test_two_companies_with_one_key_reject_the_event_naming_both(sim: Server, service: Server) -> None:
    first, second = crm_company(sim, "DUP", "One"), crm_company(sim, "DUP", "Two")
    (message_id,) = send(service, "keyed", group("DUP", "Either"))
    event = wait_for(lambda: final(service, "keyed", message_id))
    assert event["state"] == "rejected"
    assert first in event["reason"] and second in event["reason"]
    assert len(companies(sim)) == 2
