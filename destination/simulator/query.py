"""The MDA query language (reference §4.1): select, where conditions + expression, orderBy, paging.

Comparisons follow the field's type (numbers numerically, dates as instants); null only matches
IS_NULL (as in SQL, `NE x` does not match an empty field). EQ/NE/IN compare exactly; the
LIKE-family operators (CONTAINS, STARTS_WITH, ENDS_WITH) ignore case.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from destination.simulator import envelope as codes
from destination.simulator.envelope import SimError
from destination.simulator.fields import DATE_TYPES, NUMERIC_TYPES, FieldSpec, FieldType, Schema
from destination.simulator.validation import parse_epoch_ms

_ONE_VALUE = {"EQ", "NE", "GT", "GTE", "LT", "LTE", "CONTAINS", "STARTS_WITH", "ENDS_WITH"}
_MANY_VALUES = {"IN", "NOT_IN", "INCLUDES", "EXCLUDES"}
_NO_VALUE = {"IS_NULL", "IS_NOT_NULL"}
OPERATORS = frozenset(_ONE_VALUE | _MANY_VALUES | _NO_VALUE | {"BTW"})

_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_]*)")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"AND", "OR"}

# Expression tree: ("alias", name) | ("and"|"or", left, right)
Expr = tuple[Any, ...]


def bad_query(detail: str) -> SimError:
    return SimError(400, codes.INVALID_FIELD, f"Invalid query: {detail}")


def picklist_gsid(field: str, label: str) -> str:
    """A stable item GSID for a picklist label (reads return item GSIDs, not labels)."""
    digest = hashlib.sha256(f"{field}\x00{label}".encode()).hexdigest()[:32].upper()
    return f"1I00{digest}"


@dataclass(frozen=True)
class Condition:
    name: str
    operator: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Query:
    select: tuple[str, ...]
    conditions: Mapping[str, Condition]
    expression: Expr | None
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)
    limit: int
    offset: int


@dataclass(frozen=True)
class ReadOptions:
    dates_as_epoch_ms: bool = True
    picklists_as_gsids: bool = True
    # Fields whose EQ/NE/IN/NOT_IN compare text ignoring case (Company Name, unless the tenant's
    # `company_name_case_sensitive` switch says otherwise).
    fold_case: frozenset[str] = frozenset()


# ---------------------------------------------------------------- parsing


class _ExpressionParser:
    """Recursive descent: expr := term (OR term)*, term := factor (AND factor)*,
    factor := alias | "(" expr ")". AND binds tighter than OR, as in SQL."""

    def __init__(self, text: str, aliases: Mapping[str, Condition]) -> None:
        self.text = text
        self.aliases = aliases
        self.tokens = self._tokenize(text.strip())
        self.cursor = 0

    @staticmethod
    def _tokenize(text: str) -> list[str]:
        tokens: list[str] = []
        position = 0
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None:
                raise bad_query(f"unexpected character in expression at {position}: {text!r}")
            tokens.append(match.group(1))
            position = match.end()
        return tokens

    def parse(self) -> Expr:
        tree = self._binary(self._term, "OR")
        if self.cursor != len(self.tokens):
            raise bad_query(f"unexpected {self.tokens[self.cursor]!r} in expression {self.text!r}")
        return tree

    def _peek(self) -> str | None:
        return self.tokens[self.cursor] if self.cursor < len(self.tokens) else None

    def _take(self) -> str:
        if self.cursor >= len(self.tokens):
            raise bad_query(f"expression ends too early: {self.text!r}")
        self.cursor += 1
        return self.tokens[self.cursor - 1]

    def _binary(self, operand: Callable[[], Expr], keyword: str) -> Expr:
        left = operand()
        while (token := self._peek()) is not None and token.upper() == keyword:
            self._take()
            left = (keyword.lower(), left, operand())
        return left

    def _term(self) -> Expr:
        return self._binary(self._factor, "AND")

    def _factor(self) -> Expr:
        token = self._take()
        if token == "(":
            inner = self._binary(self._term, "OR")
            if self._take() != ")":
                raise bad_query(f"missing ')' in expression {self.text!r}")
            return inner
        if token not in self.aliases:
            raise bad_query(f"expression names alias {token!r} that no condition defines")
        return ("alias", token)


def _check_field(name: Any, schema: Schema, allow_unknown: bool, role: str) -> str:
    if not isinstance(name, str) or not name:
        raise bad_query(f"{role} must name a field")
    if "__gr" in name or "." in name:
        raise bad_query(f"lookup traversal ({name}) is not supported by the simulator")
    if name not in schema and not allow_unknown:
        raise bad_query(f"unknown field {name} in {role}")
    return name


def _parse_condition(raw: Any, position: int, schema: Schema, allow_unknown: bool) -> tuple[str, Condition]:
    if not isinstance(raw, dict):
        raise bad_query("each condition must be an object")
    name = _check_field(raw.get("name"), schema, allow_unknown, "condition")
    operator = raw.get("operator")
    if not isinstance(operator, str) or operator.upper() not in OPERATORS:
        raise bad_query(f"unknown operator {operator!r} (known: {', '.join(sorted(OPERATORS))})")
    operator = operator.upper()
    values = raw.get("value", [])
    if not isinstance(values, list):
        raise bad_query(f"condition on {name}: value must be a list")
    if operator in _ONE_VALUE | _MANY_VALUES and not values:
        raise bad_query(f"condition on {name}: {operator} needs a value")
    if operator == "BTW" and len(values) != 2:
        raise bad_query(f"condition on {name}: BTW needs two values")
    alias = raw.get("alias")
    if alias is not None and (
        not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or alias.upper() in _KEYWORDS
    ):
        raise bad_query(f"condition on {name}: alias must be a word other than AND/OR")
    spec = schema.get(name)
    coerced = tuple(_coerce(spec, name, value) for value in values)
    # An unnamed condition gets a key no expression can name: it then only counts without one.
    return alias or f"#{position}", Condition(name, operator, coerced)


def _parse_where(where: Any, schema: Schema, allow_unknown: bool) -> tuple[dict[str, Condition], Expr | None]:
    if where is None:
        return {}, None
    if not isinstance(where, dict):
        raise bad_query("where must be an object")
    raw_conditions = where.get("conditions", [])
    if not isinstance(raw_conditions, list):
        raise bad_query("where.conditions must be a list")
    conditions: dict[str, Condition] = {}
    for position, raw in enumerate(raw_conditions):
        alias, condition = _parse_condition(raw, position, schema, allow_unknown)
        if alias in conditions:
            raise bad_query(f"alias {alias} is used twice")
        conditions[alias] = condition
    text = where.get("expression")
    if text in (None, ""):
        return conditions, None  # no expression: every condition must hold
    if not isinstance(text, str):
        raise bad_query("where.expression must be a string")
    return conditions, _ExpressionParser(text, conditions).parse()


def _parse_int(value: Any, name: str, default: int, low: int, high: int | None) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_query(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_query(f"{name} must be {bound}")
    return value


def parse_query(body: Any, schema: Schema, *, max_limit: int, allow_unknown: bool) -> Query:
    if not isinstance(body, dict):
        raise bad_query("the body must be a JSON object")
    select = body.get("select")
    if not isinstance(select, list) or not select:
        raise bad_query("select must be a non-empty list of field names")
    fields = tuple(_check_field(name, schema, allow_unknown, "select") for name in select)
    conditions, expression = _parse_where(body.get("where"), schema, allow_unknown)
    order_raw = body.get("orderBy") or {}
    if not isinstance(order_raw, dict):
        raise bad_query('orderBy must be an object like {"Name": "asc"}')
    order: list[tuple[str, bool]] = []
    for name, direction in order_raw.items():
        _check_field(name, schema, allow_unknown, "orderBy")
        if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
            raise bad_query(f"orderBy {name}: direction must be asc or desc")
        order.append((name, direction.lower() == "desc"))
    return Query(
        select=fields,
        conditions=conditions,
        expression=expression,
        order_by=tuple(order),
        limit=_parse_int(body.get("limit"), "limit", max_limit, 1, max_limit),
        offset=_parse_int(body.get("offset"), "offset", 0, 0, None),
    )


# ---------------------------------------------------------------- evaluation


def _coerce(spec: FieldSpec | None, name: str, value: Any) -> Any:
    """A condition value in the form stored values are compared in."""
    if spec is None:
        return value
    if spec.type in NUMERIC_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            raise bad_query(f"{name} compares numbers, got {value!r}") from None
    if spec.type in DATE_TYPES:
        instant = parse_epoch_ms(value)
        if instant is None:
            raise bad_query(f"{name} compares dates, got {value!r}")
        return instant
    if spec.type is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad_query(f"{name} compares booleans, got {value!r}")
    return value if isinstance(value, str) else str(value)


def _forms(spec: FieldSpec | None, name: str, stored: Any) -> list[Any]:
    """The stored value as comparable forms; a picklist also matches by its item GSID."""
    if spec is None:
        return [stored]
    if spec.type in NUMERIC_TYPES:
        return [float(stored)]
    if spec.type in DATE_TYPES:
        return [parse_epoch_ms(stored)]
    if spec.type is FieldType.PICKLIST:
        return [stored, picklist_gsid(name, str(stored))]
    return [stored]


def _before(a: Any, b: Any) -> bool:
    try:
        return bool(a < b)
    except TypeError:
        return str(a) < str(b)


def _members(stored: Any) -> list[str]:
    if isinstance(stored, list):
        return [str(item) for item in stored]
    return [part.strip() for part in str(stored).split(";")]


def _folded(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(value.casefold() if isinstance(value, str) else value for value in values)


def _matches(condition: Condition, spec: FieldSpec | None, stored: Any, fold: bool = False) -> bool:
    op, values = condition.operator, condition.values
    if op in _NO_VALUE:
        return (stored is None) == (op == "IS_NULL")
    if stored is None:
        return False
    forms = _forms(spec, condition.name, stored)
    if fold and op in ("EQ", "NE", "IN", "NOT_IN"):
        forms, values = list(_folded(forms)), _folded(values)
    first = forms[0]
    if op in ("EQ", "NE"):
        return any(form == values[0] for form in forms) == (op == "EQ")
    if op in ("IN", "NOT_IN"):
        return any(form in values for form in forms) == (op == "IN")
    if op in ("INCLUDES", "EXCLUDES"):
        found = any(value in _members(stored) for value in values)
        return found == (op == "INCLUDES")
    if op in ("CONTAINS", "STARTS_WITH", "ENDS_WITH"):
        text, needle = str(stored).lower(), str(values[0]).lower()
        if op == "CONTAINS":
            return needle in text
        return text.startswith(needle) if op == "STARTS_WITH" else text.endswith(needle)
    if op == "BTW":
        return not _before(first, values[0]) and not _before(values[1], first)
    if op in ("GT", "GTE"):
        return _before(values[0], first) or (op == "GTE" and first == values[0])
    return _before(first, values[0]) or (op == "LTE" and first == values[0])


def _evaluate(expr: Expr, truth: Mapping[str, bool]) -> bool:
    if expr[0] == "alias":
        return truth[expr[1]]
    if expr[0] == "and":
        return _evaluate(expr[1], truth) and _evaluate(expr[2], truth)
    return _evaluate(expr[1], truth) or _evaluate(expr[2], truth)


def _selected(query: Query, schema: Schema, record: Mapping[str, Any], fold: frozenset[str]) -> bool:
    truth = {
        alias: _matches(cond, schema.get(cond.name), record.get(cond.name), cond.name in fold)
        for alias, cond in query.conditions.items()
    }
    if query.expression is None:
        return all(truth.values())
    return _evaluate(query.expression, truth)


def _order(query: Query, schema: Schema, rows: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
        for name, descending in query.order_by:
            va, vb = a.get(name), b.get(name)
            if va is None or vb is None:  # empty values sort last either way
                if va is None and vb is None:
                    continue
                return 1 if va is None else -1
            fa = _forms(schema.get(name), name, va)[0]
            fb = _forms(schema.get(name), name, vb)[0]
            if fa == fb:
                continue
            result = -1 if _before(fa, fb) else 1
            return -result if descending else result
        return 0

    return sorted(rows, key=functools.cmp_to_key(compare)) if query.order_by else rows


def read_value(spec: FieldSpec | None, name: str, stored: Any, options: ReadOptions) -> Any:
    """A stored value as Gainsight reads it back (dates as epoch ms, picklists as item GSIDs)."""
    if stored is None or spec is None:
        return stored
    if spec.type in DATE_TYPES and options.dates_as_epoch_ms:
        return parse_epoch_ms(stored)
    if spec.type is FieldType.PICKLIST and options.picklists_as_gsids:
        return picklist_gsid(name, str(stored))
    return stored


def run_query(
    query: Query, schema: Schema, records: Iterable[Mapping[str, Any]], options: ReadOptions
) -> list[dict[str, Any]]:
    matched = [record for record in records if _selected(query, schema, record, options.fold_case)]
    page = _order(query, schema, matched)[query.offset : query.offset + query.limit]
    return [
        {name: read_value(schema.get(name), name, row.get(name), options) for name in query.select}
        for row in page
    ]
