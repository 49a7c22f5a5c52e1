"""What the simulated tenant knows about its objects: field types and the standard schemas.

Types are Gainsight's Data Management types (reference §4.6). The standard fields are the ones the
product writes (reference §3.1, §4.6); custom fields (`…__gc`) come from the simulator config, and
so do Low Volume custom objects (reference §9): each a name ending in `__gc` and its fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class FieldType(StrEnum):
    STRING = "STRING"
    RICHTEXTAREA = "RICHTEXTAREA"
    EMAIL = "EMAIL"
    URL = "URL"
    GSID = "GSID"
    LOOKUP = "LOOKUP"
    NUMBER = "NUMBER"
    CURRENCY = "CURRENCY"
    PERCENTAGE = "PERCENTAGE"
    BOOLEAN = "BOOLEAN"
    DATE = "DATE"
    DATETIME = "DATETIME"
    PICKLIST = "PICKLIST"
    MULTISELECTDROPDOWNLIST = "MULTISELECTDROPDOWNLIST"


NUMERIC_TYPES = frozenset({FieldType.NUMBER, FieldType.CURRENCY, FieldType.PERCENTAGE})
DATE_TYPES = frozenset({FieldType.DATE, FieldType.DATETIME})
GSID_TYPES = frozenset({FieldType.GSID, FieldType.LOOKUP})

CUSTOM_FIELD_SUFFIX = "__gc"


@dataclass(frozen=True)
class FieldSpec:
    type: FieldType
    nullable: bool = True
    system: bool = False  # set by Gainsight, never writable through the API
    lookup: str | None = None  # a GSID field that must name a record of this object ("Company")


Schema = Mapping[str, FieldSpec]

SYSTEM_FIELDS: dict[str, FieldSpec] = {
    "Gsid": FieldSpec(FieldType.GSID, nullable=False, system=True),
    "CreatedDate": FieldSpec(FieldType.DATETIME, system=True),
    "ModifiedDate": FieldSpec(FieldType.DATETIME, system=True),
    "CreatedBy": FieldSpec(FieldType.GSID, system=True),
    "ModifiedBy": FieldSpec(FieldType.GSID, system=True),
}

_S = FieldSpec(FieldType.STRING)

PERSON_STANDARD_FIELDS: dict[str, FieldSpec] = {
    "Email": FieldSpec(FieldType.EMAIL, nullable=False),
    "Name": _S,
    "FirstName": _S,
    "MiddleName": _S,
    "LastName": _S,
    "LinkedinUrl": _S,
    "Location": _S,
    "ExternalRecordID__gc": _S,
    "EmailOptOut": FieldSpec(FieldType.BOOLEAN),
    "DynamicResolutionKey": _S,
    "Comments": FieldSpec(FieldType.RICHTEXTAREA),
    "Timezone": _S,
    "MasterRecordID": _S,
    "MasterAvatarTypeCode": FieldSpec(FieldType.NUMBER),
}

COMPANY_STANDARD_FIELDS: dict[str, FieldSpec] = {
    "Name": FieldSpec(FieldType.STRING, nullable=False),
    "Employees": FieldSpec(FieldType.NUMBER),
    "Arr": FieldSpec(FieldType.CURRENCY),
    "Mrr": FieldSpec(FieldType.CURRENCY),
    "BillingAddress": FieldSpec(FieldType.RICHTEXTAREA),
    "Summary": FieldSpec(FieldType.RICHTEXTAREA),
    "CompanyType": _S,
    "Csm": _S,
    "CustomerlifetimeInMonths": FieldSpec(FieldType.NUMBER),
    "Industry": _S,
    "IndustryNew": _S,
    "LifecycleInWeeks": FieldSpec(FieldType.NUMBER),
    "ManagedAs": _S,
    "OriginalContractDate": FieldSpec(FieldType.DATE),
    "ParentCompany": _S,
    "RenewalDate": FieldSpec(FieldType.DATE),
    "Stage": _S,
    "Status": _S,
    "Tags": _S,
    "TickerSymbol": _S,
    "Users": FieldSpec(FieldType.NUMBER),
    "SfdcAccountId": _S,
}


LOOKUP_TARGETS = frozenset({"Company"})


class ObjectField(BaseModel):
    """One field of a custom object in the simulator config: `DATE`, or `{type: GSID, lookup: Company}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    lookup: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_type(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lookup_is_a_gsid(self) -> ObjectField:
        if self.lookup is not None:
            if self.type not in GSID_TYPES:
                raise ValueError(f"lookup needs a GSID or LOOKUP field, not {self.type}")
            if self.lookup not in LOOKUP_TARGETS:
                raise ValueError(f"lookup names {self.lookup}; known: {', '.join(sorted(LOOKUP_TARGETS))}")
        return self


def object_schema(fields: Mapping[str, ObjectField]) -> dict[str, FieldSpec]:
    """System fields + the custom object's own (every custom object field is custom, `…__gc`)."""
    schema: dict[str, FieldSpec] = dict(SYSTEM_FIELDS)
    schema.update({name: FieldSpec(f.type, lookup=f.lookup) for name, f in fields.items()})
    return schema


def build_schema(standard: Mapping[str, FieldSpec], custom: Mapping[str, FieldType]) -> dict[str, FieldSpec]:
    """System + standard + custom fields of one object (custom names are checked by the config)."""
    schema: dict[str, FieldSpec] = dict(SYSTEM_FIELDS)
    schema.update(standard)
    schema.update({name: FieldSpec(kind) for name, kind in custom.items()})
    return schema
