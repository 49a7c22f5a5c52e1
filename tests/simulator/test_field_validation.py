"""Field checks on People (GSOBJ_VDT* codes) and Company (GSOBJ_100x codes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from destination.simulator import SANDBOX, SimulatorConfig
from destination.simulator.fields import FieldType
from destination.simulator.validation import parse_epoch_ms
from tests.simulator.helpers import ACCESS, COMPANY, PEOPLE, sim_client

CONFIG = SimulatorConfig.sandbox(
    person_fields={
        **dict(SANDBOX.person_fields),
        "Budget__gc": FieldType.CURRENCY,
        "LastSeen__gc": FieldType.DATETIME,
        "Score__gc": FieldType.PERCENTAGE,
        "Owner__gc": FieldType.GSID,
    },
    company_fields={
        **dict(SANDBOX.company_fields),
        "Active__gc": FieldType.BOOLEAN,
        "Signed__gc": FieldType.DATETIME,
        "Tags__gc": FieldType.MULTISELECTDROPDOWNLIST,
    },
)


@pytest.fixture
def typed() -> Iterator[TestClient]:
    with sim_client(CONFIG) as client:
        yield client


def person(client: TestClient, **fields: Any) -> Any:
    return client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com", **fields})


def company(client: TestClient, **fields: Any) -> Any:
    return client.post(COMPANY, headers=ACCESS, json={"records": [{"Name": "Acme", **fields}]})


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("EmailOptOut", "yes", "GSOBJ_VDTBOOL1001"),
        ("EmailOptOut", 1, "GSOBJ_VDTBOOL1001"),
        ("MasterAvatarTypeCode", "abc", "GSOBJ_VDTNUM1001"),
        ("MasterAvatarTypeCode", True, "GSOBJ_VDTNUM1001"),
        ("MasterAvatarTypeCode", 1e20, "GSOBJ_VDTNUM1002"),
        ("Seats__gc", [1], "GSOBJ_VDTNUM1001"),
        ("Budget__gc", "lots", "GSOBJ_VDTCURREN1001"),
        ("Budget__gc", "1,000", "GSOBJ_VDTCURREN1002"),
        ("Score__gc", "half", "GSOBJ_VDTNUM1001"),
        ("LastSeen__gc", "yesterday", "GSOBJ_VDTDATIME1001"),
        ("Owner__gc", "not-a-gsid", "GSOBJ_VDTGSID1001"),
        ("FirstName", {"first": "Ada"}, "GSOBJ_VDTBSTR1001"),
        ("FirstName", "x" * 256, "GSOBJ_VDTBSTR1001"),
    ],
)
def test_person_type_errors_use_vdt_codes(typed: TestClient, field: str, value: Any, code: str) -> None:
    response = person(typed, **{field: value})
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == code
    assert field in response.json()["errorDesc"]
    assert typed.get("/__sim/people").json() == []


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("Employees", "many", "GSOBJ_1008"),
        ("Employees", False, "GSOBJ_1008"),
        ("Arr", "1,000", "GSOBJ_1008"),
        ("Users", 1e19, "GSOBJ_1008"),
        ("Active__gc", "true", "GSOBJ_1008"),
        ("RenewalDate", "2024-02-30", "GSOBJ_1006"),
        ("Signed__gc", "soon", "GSOBJ_1005"),
        ("Name", None, "GSOBJ_1007"),
        ("Name", "x" * 256, "GSOBJ_1001"),
        ("Summary", "x" * 131_073, "GSOBJ_1001"),
        ("Industry", ["Tech"], "GSOBJ_1002"),
    ],
)
def test_company_type_errors_use_gsobj_100x_codes(
    typed: TestClient, field: str, value: Any, code: str
) -> None:
    response = company(typed, **{field: value})
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == code
    assert typed.get("/__sim/companies").json() == []


def test_unparseable_date_is_gsobj_1006_with_field_and_value(typed: TestClient) -> None:
    response = company(typed, RenewalDate="210318")
    assert response.json()["errorCode"] == "GSOBJ_1006"
    assert response.json()["errorDesc"] == "Invalid date format (RenewalDate = 210318)"


def test_unparseable_datetime_is_gsobj_1005_with_field_and_value(typed: TestClient) -> None:
    response = company(typed, Signed__gc="210318")
    assert response.json()["errorDesc"] == "Invalid dateTime format (Signed__gc = 210318)"


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-18",
        "2024-03-18T10:20:30Z",
        "2024-03-18T10:20:30.123+02:00",
        "2024-03-18 10:20",
        1710720000000,
    ],
)
def test_accepted_date_forms(typed: TestClient, value: Any) -> None:
    assert company(typed, RenewalDate=value, Signed__gc=value).status_code == 200


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-18", 1710720000000),
        ("2024-03-18T00:00:01Z", 1710720001000),
        ("2024-03-18T02:00:00+02:00", 1710720000000),
        (1710720000000, 1710720000000),
        ("210318", None),
        ("20240318", None),
        (True, None),
        (1.5, None),
    ],
)
def test_date_inputs_parse_to_epoch_ms(value: Any, expected: int | None) -> None:
    assert parse_epoch_ms(value) == expected


def test_numeric_strings_are_accepted_and_stored_as_numbers(typed: TestClient) -> None:
    assert person(typed, Seats__gc="12", MasterAvatarTypeCode=" 7 ").status_code == 200
    assert company(typed, Employees="250", Arr="1999.50").status_code == 200
    [stored_person] = typed.get("/__sim/people").json()
    [stored_company] = typed.get("/__sim/companies").json()
    assert (stored_person["Seats__gc"], stored_person["MasterAvatarTypeCode"]) == (12, 7)
    assert (stored_company["Employees"], stored_company["Arr"]) == (250, 1999.5)


def test_numeric_strings_switch_off_demands_json_numbers() -> None:
    with sim_client(SimulatorConfig.sandbox(accept_numeric_strings=False)) as client:
        assert person(client, Seats__gc="12").json()["errorCode"] == "GSOBJ_VDTNUM1001"
        assert person(client, Seats__gc=12).status_code == 200


def test_booleans_are_strict(typed: TestClient) -> None:
    assert person(typed, EmailOptOut="false").status_code == 400
    assert person(typed, EmailOptOut=False).status_code == 200


def test_numbers_sent_to_text_fields_are_stored_as_text(typed: TestClient) -> None:
    assert company(typed, TickerSymbol=42).status_code == 200
    assert typed.get("/__sim/companies").json()[0]["TickerSymbol"] == "42"


def test_multiselect_takes_a_list_of_strings(typed: TestClient) -> None:
    assert company(typed, Tags__gc=["a", "b"]).status_code == 200
    assert company(typed, Tags__gc=[1]).status_code == 400


@pytest.mark.parametrize("field", ["Favourite", "Unknown__gc", "seats__gc"])
def test_unknown_fields_are_rejected(typed: TestClient, field: str) -> None:
    person_answer = person(typed, **{field: "x"})
    company_answer = company(typed, **{field: "x"})
    assert person_answer.status_code == company_answer.status_code == 400
    assert person_answer.json()["errorCode"] == company_answer.json()["errorCode"] == "GSOBJ_1002"
    assert field in company_answer.json()["errorDesc"]


def test_unknown_fields_switch_off_stores_them_untyped() -> None:
    with sim_client(SimulatorConfig.sandbox(reject_unknown_fields=False)) as client:
        assert person(client, Mood__gc={"any": "thing"}).status_code == 200
        assert client.get("/__sim/people").json()[0]["Mood__gc"] == {"any": "thing"}


def test_every_problem_of_a_call_is_reported(typed: TestClient) -> None:
    response = person(typed, EmailOptOut="no", Seats__gc="many")
    assert response.json()["errorCode"] == "GSOBJ_VDTBOOL1001"
    assert "EmailOptOut" in response.json()["errorDesc"] and "Seats__gc" in response.json()["errorDesc"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Seats": FieldType.NUMBER}, "must end in __gc"),
        ({"__gc": FieldType.NUMBER}, "must end in __gc"),
        ({"ExternalRecordID__gc": FieldType.NUMBER}, "standard field"),
    ],
)
def test_config_rejects_bad_custom_person_fields(fields: dict[str, FieldType], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SimulatorConfig(person_fields=fields)


def test_config_rejects_bad_custom_company_fields() -> None:
    with pytest.raises(ValidationError, match="must end in __gc"):
        SimulatorConfig(company_fields={"Region": FieldType.STRING})
    with pytest.raises(ValidationError, match="standard field"):
        SimulatorConfig(company_fields={"Name": FieldType.STRING})
