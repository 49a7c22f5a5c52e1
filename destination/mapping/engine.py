"""Apply an ObjectSpec to an event: standard fields, custom fields, composed fields.

Pure: no I/O, no clock. Problems that do not stop the event (an unmapped trait, a value that is
not a number) are returned as diagnostics; a missing required field raises EventError.

The rules read as "first source with a value wins" (tests/properties/test_mapping_engine.py
checks that literal reading against this one). Probing every source of every rule would cost
one lookup per source (about fifty for a Person), while an event holds a handful of traits: so
each object the rules read from is walked once, its keys looked up in a table made once per spec
and destination custom map (`_compile`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from destination.errors import EventError
from destination.jsonutil import js_json_text
from destination.mapping.coercions import Coercion, NotCoercible, as_is
from destination.mapping.spec import Compose, ObjectSpec, Path_
from destination.sized_cache import SizedCache

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """Something about the event that was left out, and why."""

    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class MappedRecord(NamedTuple):
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


class _Root(NamedTuple):
    key: str | None  # the event's own key when the object is one step down (`traits`), else None
    path: Path_
    # What each key there is: a source position (int), several (tuple), a custom field's target
    # name (str), or _SKIP; a key absent from the table is an unmapped custom trait.
    table: dict[str, Any]
    custom: bool  # whether keys no rule reads are custom fields


class _Compiled(NamedTuple):
    roots: tuple[_Root, ...]
    # Per source position, numbered by (rule, preference) so that sorting positions puts each
    # rule's preferred present source first: (rule index, target field, coercion or None).
    picks: tuple[tuple[int, str, Coercion | None], ...]
    required: tuple[tuple[tuple[int, ...], str], ...]  # (the rule's positions, its error message)
    serial: int  # never reused: names these tables in the recipe cache


# The keys of each root object (None: not an object), in order.
Shape = tuple[tuple[str, ...] | None, ...]


class _Recipe(NamedTuple):
    """What `map_record` does with events of one shape whose keys all hold a value: which key
    of which root each required rule, each field and each custom field is read from."""

    required: tuple[tuple[int, str, str] | str, ...]  # (root, key, error) or the error: no source
    steps: tuple[tuple[int, str, str, Coercion | None], ...]  # (root, key, field, coercion), in order


# The caches below are bounded by estimated bytes held, not by count (issue 19): a key held costs
# about a str object (~64 bytes) plus its characters, a table or recipe entry about 100 bytes.
_KEY_BYTES = 64
_ENTRY_BYTES = 100
_SHAPE_MAX_BYTES = 64 * 1024  # larger shapes (~900 keys and more) are walked every time
_SHAPES_BYTES = 4 * 1024 * 1024  # for the shapes seen once, and again for the recipes
_COMPILED_MAX_BYTES = 1024 * 1024  # a larger custom map is compiled again when it comes back
_COMPILED_BYTES = 8 * 1024 * 1024
CACHE_MAX_BYTES = 2 * _SHAPES_BYTES + _COMPILED_BYTES

# Recipes per (compiled tables, event shape). Events from one sender nearly always come in a
# few shapes (the same traits each time), and following a recipe reads only the keys that make
# the record, where the walk looks up every key. A shape gets its recipe the second time it is
# seen, so senders whose every event differs pay only for remembering shapes.
_SEEN: SizedCache[tuple[int, Shape], bool] = SizedCache(_SHAPES_BYTES, _SHAPE_MAX_BYTES)
_RECIPES: SizedCache[tuple[int, Shape], _Recipe] = SizedCache(_SHAPES_BYTES, 2 * _SHAPE_MAX_BYTES)
_COMPILED: SizedCache[tuple[int, int], tuple[ObjectSpec, Mapping[str, str], _Compiled]] = SizedCache(
    _COMPILED_BYTES, _COMPILED_MAX_BYTES
)
# The last tables too large to keep, so that a request's items sharing them compile them once.
_LAST_LARGE: list[tuple[ObjectSpec, Mapping[str, str], _Compiled]] = []
_SERIALS = itertools.count()


def cache_bytes() -> int:
    """The estimated bytes the caches hold; at most CACHE_MAX_BYTES, plus `_LAST_LARGE`."""
    return _SEEN.bytes + _RECIPES.bytes + _COMPILED.bytes


def _new_recipe(compiled: _Compiled, shape: Shape) -> _Recipe | None:
    """The shape's recipe the second time it is seen (and kept when small enough), else None."""
    key = (compiled.serial, shape)
    if sum(len(keys) for keys in shape if keys) * _KEY_BYTES > _SHAPE_MAX_BYTES:
        return None  # too large to keep: not worth sizing
    size = sum(_KEY_BYTES + sum(len(k) + _KEY_BYTES for k in keys) for keys in shape if keys)
    if key not in _SEEN:
        _SEEN.put(key, True, size)
        return None
    recipe = _recipe(compiled, shape)
    _RECIPES.put(key, recipe, size + _ENTRY_BYTES * (len(recipe.steps) + len(recipe.required)))
    return recipe


def _compile(spec: ObjectSpec, custom_map: Mapping[str, str]) -> _Compiled:
    """The spec's tables for one destination's custom map, made once per (spec, map) object pair;
    the caches keep both alive, so their ids cannot be reused while they are keys."""
    key = (id(spec), id(custom_map))
    cached = _COMPILED.get(key)
    if cached is None and _LAST_LARGE:
        cached = _LAST_LARGE[0]
    if cached is not None and cached[0] is spec and cached[1] is custom_map:
        return cached[2]
    compiled = _make_tables(spec, custom_map)
    size = sum(len(root.table) for root in compiled.roots) * _ENTRY_BYTES + sum(
        len(name) + len(target) + 2 * _KEY_BYTES for name, target in custom_map.items()
    )
    if not _COMPILED.put(key, (spec, custom_map, compiled), size):
        _LAST_LARGE[:] = [(spec, custom_map, compiled)]
    return compiled


def _make_tables(spec: ObjectSpec, custom_map: Mapping[str, str]) -> _Compiled:
    positions: dict[tuple[int, int], int] = {}
    picks: list[tuple[int, str, Coercion | None]] = []
    for rule in spec.fields:
        for preference in range(len(rule.sources)):
            positions[rule.index, preference] = len(picks)
            picks.append((rule.index, rule.to, None if rule.coerce is as_is else rule.coerce))
    roots = []
    for path, readers, is_custom in zip(spec.roots, spec.readers, spec.custom_roots, strict=True):
        table: dict[str, Any] = {}
        if is_custom:
            table.update((name, _SKIP) for name in spec.reserved_traits)
            table.update((name, target) for name, target in custom_map.items() if name not in table)
        for name, entries in readers.items():
            read = tuple(positions[entry] for entry in entries)
            table[name] = read[0] if len(read) == 1 else read
        roots.append(_Root(path[0] if len(path) == 1 else None, path, table, is_custom))
    required = tuple(
        (tuple(positions[rule.index, p] for p in range(len(rule.sources))), rule.required or "")
        for rule in spec.required
    )
    return _Compiled(tuple(roots), tuple(picks), required, next(_SERIALS))


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
    compiled = _compile(spec, custom_map)
    objects = [
        obj
        if isinstance(obj := event.get(root.key) if root.key else _object_at(event, root.path), dict)
        else None
        for root in compiled.roots
    ]
    if not diagnose:  # a recipe makes no "dropped" diagnostics: it never reads unmapped traits
        shape = tuple([tuple(obj) if obj is not None else None for obj in objects])
        # A recipe is a non-empty tuple: `or` looks further only when it is not kept.
        recipe = _RECIPES.get((compiled.serial, shape)) or _new_recipe(compiled, shape)
        if recipe is not None:
            followed = _follow(recipe, objects, spec.compose)
            if followed is not None:
                return followed
    found: dict[int, Any] = {}  # source position -> value
    custom: dict[str, tuple[str, Any] | None] = {}  # trait -> (target, value); None: unmapped
    diagnostics: list[Diagnostic] = []
    for root, obj in zip(compiled.roots, objects, strict=True):
        if obj is not None:
            _walk(root, obj, found, custom, diagnostics if diagnose else None, map_name)
    _check_required(compiled.required, found)
    record = _standard_fields(compiled.picks, found, diagnostics)
    for taken in custom.values():
        if taken is not None:
            record[taken[0]] = taken[1]
    if spec.compose is not None:
        _compose(spec.compose, record)
    return MappedRecord(record, tuple(diagnostics))


def _recipe(compiled: _Compiled, shape: Shape) -> _Recipe:
    """The walk below, made on the keys alone: each key holds where it is, (root, key), as its
    value, so every key is taken to hold a value."""
    found: dict[int, Any] = {}  # source position -> (root, key)
    custom: dict[str, tuple[str, Any] | None] = {}  # trait -> (target, (root, key))
    for root_index, (root, keys) in enumerate(zip(compiled.roots, shape, strict=True)):
        if keys is not None:
            _walk(root, {key: (root_index, key) for key in keys}, found, custom, None, "")
    required: list[tuple[int, str, str] | str] = []
    for sources, message in compiled.required:
        source = next((found[position] for position in sources if position in found), None)
        required.append((*source, message) if source is not None else message)
    steps: list[tuple[int, str, str, Coercion | None]] = []
    last = -1
    for position in sorted(found):
        rule, to, coerce = compiled.picks[position]
        if rule != last:
            last = rule
            steps.append((*found[position], to, coerce))
    for taken in custom.values():
        assert taken is not None  # unmapped traits are noted only with diagnostics
        target, (root_index, key) = taken
        steps.append((root_index, key, target, None))
    return _Recipe(tuple(required), tuple(steps))


def _follow(recipe: _Recipe, objects: list[Any], compose: Compose | None) -> MappedRecord | None:
    """The record by the recipe, or None when a key it reads holds no value (then the walk's
    answer may differ: another source of that rule, or another root's trait, would be read)."""
    for step in recipe.required:
        if isinstance(step, str):
            raise EventError(step)
        root, key, message = step
        value = objects[root][key]
        if not value and (value is None or value == ""):
            return None
        if js_falsy(value):
            raise EventError(message)
    record: dict[str, Any] = {}
    diagnostics: list[Diagnostic] = []
    for root, key, to, coerce in recipe.steps:
        value = objects[root][key]
        if not value and (value is None or value == ""):
            return None
        if coerce is None:
            record[to] = value
            continue
        try:
            record[to] = coerce(value)
        except NotCoercible as exc:
            diagnostics.append(Diagnostic(to, f"left out: {exc}"))
    if compose is not None:
        _compose(compose, record)
    return MappedRecord(record, tuple(diagnostics))


def _walk(
    root: _Root,
    obj: dict[str, Any],
    found: dict[int, Any],
    custom: dict[str, tuple[str, Any] | None],
    diagnostics: list[Diagnostic] | None,
    map_name: str,
) -> None:
    """Note what each key of one object the rules read from gives: a value for source positions
    (`found`), a custom field (`custom`), or nothing."""
    table = root.table
    for key, value in obj.items():
        if not value and (value is None or value == ""):
            continue  # null, missing and "" are all 'no value' (DESIGN §3.2); truthy values first
        entry = table.get(key)
        if type(entry) is int:
            found[entry] = value
        elif type(entry) is tuple:
            for position in entry:
                found[position] = value
        elif entry is _SKIP or not root.custom or key in custom:
            continue  # a custom trait in two roots: the first root's value
        elif entry is not None:
            # Dotted keys stay literal: "a.b" is one trait, never a nested path.
            custom[key] = (entry, value)
        elif diagnostics is not None:
            custom[key] = None
            diagnostics.append(Diagnostic(f"{'.'.join(root.path)}.{key}", f"dropped: not in {map_name}"))


def _check_required(required: tuple[tuple[tuple[int, ...], str], ...], found: dict[int, Any]) -> None:
    for sources, message in required:
        value = _MISSING
        for position in sources:
            value = found.get(position, _MISSING)
            if value is not _MISSING:
                break
        if value is _MISSING or js_falsy(value):
            raise EventError(message)


def _standard_fields(
    picks: tuple[tuple[int, str, Coercion | None], ...], found: dict[int, Any], diagnostics: list[Diagnostic]
) -> dict[str, Any]:
    """The rules' fields, in rule order, each from its preferred present source."""
    record: dict[str, Any] = {}
    last = -1
    for position in sorted(found):
        index, to, coerce = picks[position]
        if index == last:
            continue  # a less preferred source of a rule already set
        last = index
        if coerce is None:
            record[to] = found[position]
            continue
        try:
            record[to] = coerce(found[position])
        except NotCoercible as exc:
            diagnostics.append(Diagnostic(to, f"left out: {exc}"))
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
        record[compose.to] = " ".join(parts)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return js_json_text(value)
