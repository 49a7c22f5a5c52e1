"""Field checks: one record against an object's schema, every problem reported at once.

The checks are shared by People and Company; only the error codes differ (People answers with
`GSOBJ_VDT…` codes, reference §3.4; Company with `GSOBJ_100x`, §4.5), hence the two code tables.
Values are normalised on the way in (numeric strings become numbers) and stored like that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from destination.jsonutil import js_json_text
from destination.simulator import envelope as codes
from destination.simulator.fields import (
    CUSTOM_FIELD_SUFFIX,
    DATE_TYPES,
    GSID_TYPES,
    NUMERIC_TYPES,
    FieldSpec,
    FieldType,
    Schema,
)


class ProblemKind(Enum):
    UNKNOWN_FIELD = "unknown field"
    SYSTEM_FIELD = "system field"
    NOT_NULLABLE = "not nullable"
    TOO_LONG = "too long"
    BAD_STRING = "bad string"
    BAD_EMAIL = "bad email"
    BAD_GSID = "bad gsid"
    BAD_NUMBER = "bad number"
    NUMBER_RANGE = "number out of range"
    BAD_CURRENCY = "bad currency"
    CURRENCY_COMMA = "currency thousands separator"
    BAD_PERCENT = "bad percentage"
    BAD_BOOLEAN = "bad boolean"
    BAD_DATE = "bad date"
    BAD_DATETIME = "bad datetime"
    DUPLICATE = "duplicate value"


PERSON_CODES: dict[ProblemKind, str] = {
    ProblemKind.UNKNOWN_FIELD: codes.INVALID_FIELD,
    ProblemKind.SYSTEM_FIELD: codes.INVALID_FIELD,
    ProblemKind.NOT_NULLABLE: codes.NOT_NULLABLE,
    ProblemKind.TOO_LONG: "GSOBJ_VDTBSTR1001",
    ProblemKind.BAD_STRING: "GSOBJ_VDTBSTR1001",
    ProblemKind.BAD_EMAIL: "GSOBJ_VDTEMAIL1001",
    ProblemKind.BAD_GSID: "GSOBJ_VDTGSID1001",
    ProblemKind.BAD_NUMBER: "GSOBJ_VDTNUM1001",
    ProblemKind.NUMBER_RANGE: "GSOBJ_VDTNUM1002",
    ProblemKind.BAD_CURRENCY: "GSOBJ_VDTCURREN1001",
    ProblemKind.CURRENCY_COMMA: "GSOBJ_VDTCURREN1002",
    ProblemKind.BAD_PERCENT: "GSOBJ_VDTNUM1001",
    ProblemKind.BAD_BOOLEAN: "GSOBJ_VDTBOOL1001",
    ProblemKind.BAD_DATE: "GSOBJ_VDTDATIME1001",
    ProblemKind.BAD_DATETIME: "GSOBJ_VDTDATIME1001",
    ProblemKind.DUPLICATE: codes.INVALID_FIELD,
}

COMPANY_CODES: dict[ProblemKind, str] = {
    ProblemKind.UNKNOWN_FIELD: codes.INVALID_FIELD,
    ProblemKind.SYSTEM_FIELD: codes.INVALID_FIELD,
    ProblemKind.NOT_NULLABLE: codes.NOT_NULLABLE,
    ProblemKind.TOO_LONG: codes.STRING_TOO_LONG,
    ProblemKind.BAD_STRING: codes.INVALID_FIELD,
    ProblemKind.BAD_EMAIL: codes.TYPE_CHECK,
    ProblemKind.BAD_GSID: codes.TYPE_CHECK,
    ProblemKind.BAD_NUMBER: codes.TYPE_CHECK,
    ProblemKind.NUMBER_RANGE: codes.TYPE_CHECK,
    ProblemKind.BAD_CURRENCY: codes.TYPE_CHECK,
    ProblemKind.CURRENCY_COMMA: codes.TYPE_CHECK,
    ProblemKind.BAD_PERCENT: codes.TYPE_CHECK,
    ProblemKind.BAD_BOOLEAN: codes.TYPE_CHECK,
    ProblemKind.BAD_DATE: codes.BAD_DATE,
    ProblemKind.BAD_DATETIME: codes.BAD_DATETIME,
    ProblemKind.DUPLICATE: codes.INVALID_FIELD,
}

# Beyond this magnitude a NUMBER no longer fits Gainsight's storage (the exact bound is not
# documented; 1e18 keeps every 64-bit-safe business figure and rejects absurd ones).
NUMBER_LIMIT = 1e18
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_GSID = re.compile(r"^[0-9A-Z]{36}$")
_NUMERIC_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_THOUSANDS_TEXT = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)

_WRONG_TYPE = {
    FieldType.NUMBER: ProblemKind.BAD_NUMBER,
    FieldType.CURRENCY: ProblemKind.BAD_CURRENCY,
    FieldType.PERCENTAGE: ProblemKind.BAD_PERCENT,
}


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    field: str
    value: Any
    detail: str = ""

    @property
    def message(self) -> str:
        shown = self.value if isinstance(self.value, str) else js_json_text(self.value)
        if self.kind is ProblemKind.BAD_DATE:
            return f"Invalid date format ({self.field} = {shown})"
        if self.kind is ProblemKind.BAD_DATETIME:
            return f"Invalid dateTime format ({self.field} = {shown})"
        text = f"{self.kind.value.capitalize()} ({self.field} = {shown})"
        return f"{text}: {self.detail}" if self.detail else text

    def as_error(self, code_table: Mapping[ProblemKind, str]) -> dict[str, Any]:
        return {
            "errorCode": code_table[self.kind],
            "errorMessage": self.message,
            "fieldName": self.field,
            "invalidValue": self.value,
        }


@dataclass(frozen=True)
class ValidationOptions:
    reject_unknown_fields: bool = True
    accept_numeric_strings: bool = True
    string_max_length: int = 255
    richtext_max_length: int = 131_072


def parse_epoch_ms(value: Any) -> int | None:
    """Date/DateTime input as epoch milliseconds (UTC), or None when Gainsight would refuse it.

    Accepted: epoch milliseconds as a JSON number, `YYYY-MM-DD`, ISO 8601 date-times (naive = UTC).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value != int(value) or abs(value) > _MAX_EPOCH_MS:
            return None
        return int(value)
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _check_number(spec: FieldSpec, value: Any, numeric_strings: bool) -> tuple[Any, ProblemKind | None]:
    wrong = _WRONG_TYPE[spec.type]
    number: int | float
    if isinstance(value, bool):
        return value, wrong
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str) and numeric_strings and _NUMERIC_TEXT.match(value.strip()):
        text = value.strip()
        number = float(text) if "." in text else int(text)
    elif spec.type is FieldType.CURRENCY and isinstance(value, str) and _THOUSANDS_TEXT.match(value):
        return value, ProblemKind.CURRENCY_COMMA
    else:
        return value, wrong
    if not math.isfinite(number):
        return value, wrong
    if abs(number) > NUMBER_LIMIT:
        return value, ProblemKind.NUMBER_RANGE
    return number, None


def _check_text(value: Any, limit: int) -> tuple[Any, ProblemKind | None, str]:
    if isinstance(value, dict | list):
        return value, ProblemKind.BAD_STRING, "objects and arrays are not text"
    text = value if isinstance(value, str) else js_json_text(value)
    if len(text) > limit:
        return value, ProblemKind.TOO_LONG, f"{len(text)} > {limit} characters"
    return text, None, ""


def check_value(
    spec: FieldSpec, value: Any, options: ValidationOptions
) -> tuple[Any, ProblemKind | None, str]:
    """(normalised value, problem kind or None, detail) for one field value."""
    if value is None:
        return None, (None if spec.nullable else ProblemKind.NOT_NULLABLE), ""
    kind = spec.type
    if kind in NUMERIC_TYPES:
        number, problem = _check_number(spec, value, options.accept_numeric_strings)
        return number, problem, ""
    if kind is FieldType.BOOLEAN:
        return value, (None if isinstance(value, bool) else ProblemKind.BAD_BOOLEAN), ""
    if kind in DATE_TYPES:
        bad = ProblemKind.BAD_DATE if kind is FieldType.DATE else ProblemKind.BAD_DATETIME
        return value, (None if parse_epoch_ms(value) is not None else bad), ""
    if kind is FieldType.EMAIL:
        ok = isinstance(value, str) and len(value) <= options.string_max_length
        return value, (None if ok and _EMAIL.match(value) else ProblemKind.BAD_EMAIL), ""
    if kind in GSID_TYPES:
        ok = isinstance(value, str) and _GSID.match(value) is not None
        return value, (None if ok else ProblemKind.BAD_GSID), ""
    if kind is FieldType.MULTISELECTDROPDOWNLIST and isinstance(value, list):
        ok = all(isinstance(item, str) for item in value)
        return value, (None if ok else ProblemKind.BAD_STRING), ""
    limit = options.richtext_max_length if kind is FieldType.RICHTEXTAREA else options.string_max_length
    return _check_text(value, limit)


def _field_name_problem(
    name: str, spec: FieldSpec | None, options: ValidationOptions, writable_system: frozenset[str]
) -> Problem | None:
    if spec is not None and spec.system and name not in writable_system:
        return Problem(ProblemKind.SYSTEM_FIELD, name, None, "system fields are set by Gainsight")
    if spec is None and options.reject_unknown_fields:
        hint = (
            "custom field is not defined on this object"
            if name.endswith(CUSTOM_FIELD_SUFFIX)
            else f"custom fields end in {CUSTOM_FIELD_SUFFIX}"
        )
        return Problem(ProblemKind.UNKNOWN_FIELD, name, None, hint)
    return None


def check_record(
    record: Mapping[str, Any],
    schema: Schema,
    options: ValidationOptions,
    *,
    writable_system: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[Problem]]:
    """Normalised record and every problem found; unknown fields pass through untyped if allowed."""
    clean: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, value in record.items():
        spec = schema.get(name)
        name_problem = _field_name_problem(name, spec, options, writable_system)
        if name_problem is not None:
            problems.append(Problem(name_problem.kind, name, value, name_problem.detail))
            continue
        if spec is None:
            clean[name] = value
            continue
        normalised, kind, detail = check_value(spec, value, options)
        if kind is not None:
            problems.append(Problem(kind, name, value, detail))
        else:
            clean[name] = normalised
    return clean, problems


def describe(problems: list[Problem]) -> str:
    """errorDesc for a failed call: every distinct problem, first one first."""
    return "; ".join(dict.fromkeys(p.message for p in problems))
