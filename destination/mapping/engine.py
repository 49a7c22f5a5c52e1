"""Apply an ObjectSpec to an event: standard fields, custom fields, composed fields.

Pure: no I/O, no clock. Problems that do not stop the event (an unmapped trait, a value that is
not a number) are returned as diagnostics; a missing required field raises EventError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination.errors import EventError
from destination.jsonutil import js_json_text
from destination.mapping.coercions import NotCoercible, as_is
from destination.mapping.spec import Compose, ObjectSpec, Path_

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something about the event that was left out, and why."""

    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


@dataclass(frozen=True, slots=True)
class MappedRecord:
    fields: dict[str, Any]
    diagnostics: tuple[Diagnostic, ...]


def js_falsy(value: Any) -> bool:
    """False in JavaScript (the reference's `!value` checks): null, false, 0 and ""."""
    if type(value) is str:  # the common case, first
        return not value
    if value is None or value is False or value == "":
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0


def lookup(event: Mapping[str, Any], path: Path_) -> Any:
    """The value at a path of object keys, or _MISSING when any step is absent or not an object."""
    node: Any = event
    for key in path:
        if not isinstance(node, dict):
            return _MISSING
        node = node.get(key, _MISSING)
        if node is _MISSING:
            return _MISSING
    return node


_SKIP: Any = object()  # a reserved trait no rule reads: neither a field nor a custom field
# Per object root: (path, key -> rule readers | custom target | _SKIP, whether others are custom).
_Table = tuple[tuple[Path_, dict[str, Any], bool], ...]
_TABLES: dict[tuple[int, int], tuple[ObjectSpec, Mapping[str, str], _Table]] = {}
_TABLES_MAX = 256


def _table(spec: ObjectSpec, custom_map: Mapping[str, str]) -> _Table:
    """One dict per root telling what each key is, for a spec and a destination's custom map: one
    lookup per key of the event instead of three. Built once per (spec, map) object pair; the
    cache keeps both alive, so their ids cannot be reused while they are keys."""
    key = (id(spec), id(custom_map))
    cached = _TABLES.get(key)
    if cached is not None and cached[0] is spec and cached[1] is custom_map:
        return cached[2]
    roots = []
    for path, readers, is_custom in zip(spec.roots, spec.readers, spec.custom_roots, strict=True):
        table: dict[str, Any] = {}
        if is_custom:
            table.update((name, _SKIP) for name in spec.reserved_traits)
            table.update((name, target) for name, target in custom_map.items() if name not in table)
        table.update(readers)
        roots.append((path, table, is_custom))
    if len(_TABLES) >= _TABLES_MAX:
        _TABLES.clear()
    _TABLES[key] = (spec, custom_map, tuple(roots))
    return tuple(roots)


def _object_at(event: Mapping[str, Any], path: Path_) -> Any:
    node: Any = event
    for step in path:
        node = node.get(step) if isinstance(node, dict) else None
    return node


def map_record(
    spec: ObjectSpec,
    event: Mapping[str, Any],
    custom_map: Mapping[str, str],
    map_name: str,
    *,
    diagnose: bool = True,
) -> MappedRecord:
    """Build the Gainsight record for `event`; custom traits are renamed through `custom_map`.
    `diagnose=False`: no diagnostics are made (callers that do not show them)."""
    chosen: dict[int, tuple[int, Any]] = {}  # rule index -> (preference, value)
    custom: list[tuple[str, Any]] = []
    diagnostics: list[Diagnostic] = []
    taken: set[str] = set()
    for path, table, is_custom in _table(spec, custom_map):
        obj = event if not path else _object_at(event, path)
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():
            if value is None or value == "":
                continue  # null, missing and "" are all 'no value' (DESIGN §3.2)
            entry = table.get(key)
            if type(entry) is tuple:
                for index, preference in entry:
                    current = chosen.get(index)
                    if current is None or preference < current[0]:
                        chosen[index] = (preference, value)
            elif entry is _SKIP or not is_custom or key in taken:
                continue
            else:
                # Dotted keys stay literal: "a.b" is one trait, never a nested path.
                taken.add(key)
                if entry is not None:
                    custom.append((entry, value))
                elif diagnose:
                    diagnostics.append(Diagnostic(f"{'.'.join(path)}.{key}", f"dropped: not in {map_name}"))
    record = _standard_fields(spec, chosen, diagnostics)
    record.update(custom)
    if spec.compose is not None:
        _compose(spec.compose, record)
    return MappedRecord(record, tuple(diagnostics))


def _standard_fields(
    spec: ObjectSpec, chosen: dict[int, tuple[int, Any]], diagnostics: list[Diagnostic]
) -> dict[str, Any]:
    for rule in spec.required:
        current = chosen.get(rule.index)
        if current is None or js_falsy(current[1]):
            raise EventError(rule.required or "")
    record: dict[str, Any] = {}
    fields = spec.fields
    for index in sorted(chosen):
        rule = fields[index]
        value = chosen[index][1]
        if rule.coerce is as_is:
            record[rule.to] = value
            continue
        try:
            record[rule.to] = rule.coerce(value)
        except NotCoercible as exc:
            diagnostics.append(Diagnostic(rule.to, f"left out: {exc}"))
    return record


def _compose(compose: Compose, record: dict[str, Any]) -> None:
    if compose.to in record:
        return
    parts = []
    for name in compose.parts:
        value = record.get(name)
        if value is not None:
            part = (value if isinstance(value, str) else _as_text(value)).strip()
            if part:
                parts.append(part)
    if parts:
        text = " ".join(parts)
        record[compose.to] = text


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return js_json_text(value)
