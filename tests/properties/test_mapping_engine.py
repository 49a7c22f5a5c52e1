"""The mapping engine agrees with the mapping files read literally: for each rule, the first of
its sources holding a value; then the custom traits of each custom root, first root first,
renamed through the destination's map; then the composed field.

The engine walks each event's keys through tables made once per spec and map (for speed); the
reading here probes every source of every rule, as the files' comments describe them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.errors import EventError
from destination.jsonutil import js_json_text
from destination.mapping.coercions import NotCoercible
from destination.mapping.engine import Diagnostic, js_falsy, map_record
from destination.mapping.spec import ObjectSpec, Path_, default_specs

SPECS = default_specs()
_ABSENT = object()


def value_at(event: Any, path: Path_) -> Any:
    node = event
    for step in path:
        if not isinstance(node, dict) or step not in node:
            return _ABSENT
        node = node[step]
    return node


def has_value(value: Any) -> bool:
    return value is not _ABSENT and value is not None and value != ""


def literal_reading(
    spec: ObjectSpec, event: dict[str, Any], custom_map: dict[str, str], map_name: str
) -> tuple[dict[str, Any], tuple[Diagnostic, ...]]:
    chosen: dict[str, Any] = {}
    for rule in spec.fields:
        for source in rule.sources:
            if has_value(value := value_at(event, source)):
                chosen[rule.to] = value
                break
    for rule in spec.required:
        if rule.to not in chosen or js_falsy(chosen[rule.to]):
            raise EventError(rule.required or "")
    diagnostics: list[Diagnostic] = []
    custom = custom_fields(spec, event, custom_map, map_name, diagnostics)
    record: dict[str, Any] = {}
    for rule in spec.fields:
        if rule.to in chosen:
            try:
                record[rule.to] = rule.coerce(chosen[rule.to])
            except NotCoercible as exc:
                diagnostics.append(Diagnostic(rule.to, f"left out: {exc}"))
    record.update(custom)
    if spec.compose is not None and spec.compose.to not in record:
        parts = [text_of(record[name]) for name in spec.compose.parts if record.get(name) is not None]
        if any(parts):
            record[spec.compose.to] = " ".join(part for part in parts if part)
    return record, tuple(diagnostics)


def custom_fields(
    spec: ObjectSpec,
    event: dict[str, Any],
    custom_map: dict[str, str],
    map_name: str,
    diagnostics: list[Diagnostic],
) -> list[tuple[str, Any]]:
    custom: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for root in spec.custom_sources:
        traits = value_at(event, root)
        for key, value in traits.items() if isinstance(traits, dict) else ():
            if not has_value(value) or key in spec.reserved_traits or key in seen:
                continue
            seen.add(key)
            if key in custom_map:
                custom.append((custom_map[key], value))
            else:
                diagnostics.append(Diagnostic(".".join(root) + "." + key, f"dropped: not in {map_name}"))
    return custom


def text_of(value: Any) -> str:
    return (value if isinstance(value, str) else js_json_text(value)).strip()


def source_keys(spec: ObjectSpec) -> list[str]:
    return sorted({path[-1] for rule in spec.fields for path in rule.sources})


KEYS = [
    *sorted(set(source_keys(SPECS.person) + source_keys(SPECS.company))),
    "seats",
    "plan",
    "a.b",
    "Gsid",
    "companies",
    "middlename",
    "other",
]
values = st.sampled_from([None, "", 0, False, True, 1.5, "7", " x ", "a@b.co", "Ada", [], {}, [1], {"a": 1}])


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Events whose roots share a few keys (the required ones, and a custom one, among them), so that rules
    often find several sources, and events are often mapped rather than refused; then more
    events of the same shape (the same keys, in order) with other values, one of which may
    hold no value: the engine's recipe for a shape is made the second time it sees it."""
    chosen = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=6, unique=True))
    pool = ["email", "name", "other", *(key for key in chosen if key not in ("email", "name", "other"))]

    def root() -> Any:
        if draw(st.integers(0, 5)) == 0:
            return draw(values)  # not an object
        return draw(st.dictionaries(st.sampled_from(pool), values, max_size=len(pool)))

    def same_shape(value: Any) -> Any:
        if isinstance(value, dict) and value.keys() <= set(pool):
            return {key: draw(values) if draw(st.booleans()) else same_shape(v) for key, v in value.items()}
        return value

    event: dict[str, Any] = {}
    if draw(st.booleans()):
        event["traits"] = root()
    if draw(st.booleans()):
        event["context"] = {"traits": root()} if draw(st.integers(0, 5)) else draw(values)
    targets = st.sampled_from(["Seats__gc", "Plan__gc", "Email", "Name", "X__gc"])
    custom_map = draw(st.dictionaries(st.sampled_from(pool + KEYS[:5]), targets, max_size=4))
    return [event, event, *(same_shape(event) for _ in range(3))], custom_map


def check(spec: ObjectSpec, event: dict[str, Any], custom_map: dict[str, str], diagnose: bool) -> None:
    try:
        expected = literal_reading(spec, event, custom_map, "theMap")
    except EventError as exc:
        with pytest.raises(EventError) as caught:
            map_record(spec, event, custom_map, "theMap", diagnose=diagnose)
        assert caught.value.message == exc.message
        return
    mapped = map_record(spec, event, custom_map, "theMap", diagnose=diagnose)
    assert list(mapped.fields.items()) == list(expected[0].items())
    wanted = expected[1] if diagnose else tuple(d for d in expected[1] if not d.problem.startswith("dropped"))
    assert mapped.diagnostics == wanted


@pytest.mark.parametrize("name", ["person", "company"])
@settings(max_examples=400, deadline=None)
@given(case=cases(), diagnose=st.booleans())
def test_the_engine_reads_the_files_literally(
    name: str, case: tuple[list[dict[str, Any]], dict[str, str]], diagnose: bool
) -> None:
    spec: ObjectSpec = getattr(SPECS, name)
    events, custom_map = case
    for event in events:
        check(spec, event, custom_map, diagnose)
