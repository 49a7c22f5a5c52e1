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


def is_present(value: Any) -> bool:
    """null, missing and "" are all 'no value' (DESIGN §3.2)."""
    return value is not _MISSING and value is not None and value != ""


def _chosen_values(spec: ObjectSpec, event: Mapping[str, Any]) -> dict[int, tuple[int, Any]]:
    """rule index -> (preference, value): each rule's most preferred present source value."""
    chosen: dict[int, tuple[int, Any]] = {}
    for path, readers in zip(spec.parents, spec.readers, strict=True):
        obj = lookup(event, path)
        if not isinstance(obj, dict):
            continue
        for key, value in obj.items():
            wanted = readers.get(key)
            if wanted is None or value is None or value == "":
                continue
            for index, preference in wanted:
                current = chosen.get(index)
                if current is None or preference < current[0]:
                    chosen[index] = (preference, value)
    return chosen


def map_record(
    spec: ObjectSpec,
    event: Mapping[str, Any],
    custom_map: Mapping[str, str],
    map_name: str,
) -> MappedRecord:
    """Build the Gainsight record for `event`; custom traits are renamed through `custom_map`."""
    record: dict[str, Any] = {}
    diagnostics: list[Diagnostic] = []
    chosen = _chosen_values(spec, event)
    for rule in spec.required:
        if rule.index not in chosen:
            raise EventError(rule.required or "")
    for index in sorted(chosen):
        rule = spec.fields[index]
        value = chosen[index][1]
        if rule.coerce is as_is:
            record[rule.to] = value
            continue
        try:
            record[rule.to] = rule.coerce(value)
        except NotCoercible as exc:
            diagnostics.append(Diagnostic(rule.to, f"left out: {exc}"))
    _add_custom_fields(spec, event, custom_map, map_name, record, diagnostics)
    if spec.compose is not None:
        _compose(spec.compose, record)
    return MappedRecord(record, tuple(diagnostics))


def _add_custom_fields(
    spec: ObjectSpec,
    event: Mapping[str, Any],
    custom_map: Mapping[str, str],
    map_name: str,
    record: dict[str, Any],
    diagnostics: list[Diagnostic],
) -> None:
    taken: set[str] = set()
    for root in spec.custom_sources:
        traits = lookup(event, root)
        if not isinstance(traits, dict):
            continue
        where = ".".join(root)
        for key, value in traits.items():
            # Dotted keys stay literal: "a.b" is one trait, never a nested path.
            if key in spec.reserved_traits or key in taken or not is_present(value):
                continue
            taken.add(key)
            target = custom_map.get(key)
            if target is None:
                diagnostics.append(Diagnostic(f"{where}.{key}", f"dropped: not in {map_name}"))
            else:
                record[target] = value


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
