"""Load and validate the mapping files in mappings/ (read once, at start-up).

A file is checked in two passes — its shape, then its meaning (known coercions, unique targets,
compose parts that exist) — and every problem is reported at once, each naming where it is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from destination.mapping.coercions import COERCIONS, Coercion

Path_ = tuple[str, ...]
Readers = dict[str, tuple[tuple[int, int], ...]]


class MappingSpecError(ValueError):
    """A mapping file is invalid; `problems` lists every fault found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: str = Field(min_length=1)
    from_: list[str] = Field(alias="from", min_length=1)
    coerce: str = "as_is"
    required: str | None = None


class _ComposeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    to: str
    from_: list[str] = Field(alias="from", min_length=1)


class _SpecFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: str = Field(min_length=1)
    custom_sources: list[str] = Field(min_length=1)
    excluded_traits: list[str] = []
    compose: _ComposeFile | None = None
    fields: list[_RuleFile] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class FieldRule:
    to: str
    sources: tuple[Path_, ...]
    coerce_name: str
    coerce: Coercion
    required: str | None
    index: int  # position in ObjectSpec.fields


@dataclass(frozen=True, slots=True)
class Compose:
    to: str
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    object: str
    fields: tuple[FieldRule, ...]
    custom_sources: tuple[Path_, ...]
    # Trait names never taken as custom fields: the system fields and every key a rule reads.
    reserved_traits: frozenset[str]
    compose: Compose | None
    standard_fields: frozenset[str]
    required: tuple[FieldRule, ...]
    # Every object path rules read from or custom fields come from (traits, context.traits…),
    # resolved once per event and walked once: for each, the keys rules read there
    # (key -> ((rule index, preference), ...)) and whether its other keys are custom fields.
    # Walking an event's few keys through this index is much cheaper than probing every source.
    roots: tuple[Path_, ...]
    readers: tuple[Readers, ...]
    custom_roots: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class Specs:
    person: ObjectSpec
    company: ObjectSpec
    # The company rules without Name's `required`: a tenant keyed by its own company field
    # (companyIdentity) needs a name only to create a company (DESIGN §3.3).
    company_unnamed: ObjectSpec


def without_required(spec: ObjectSpec, field: str) -> ObjectSpec:
    """The same rules, `field` no longer required."""
    return replace(spec, required=tuple(rule for rule in spec.required if rule.to != field))


def _split(path: str) -> Path_:
    return tuple(path.split("."))


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(file)"
        problems.append(f"{where}: {err['msg']}")
    return problems


def _meaning_problems(raw: _SpecFile) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for i, rule in enumerate(raw.fields):
        if rule.coerce not in COERCIONS:
            known = ", ".join(sorted(COERCIONS))
            problems.append(f"fields.{i}.coerce: unknown coercion {rule.coerce!r} (known: {known})")
        if rule.to in seen:
            problems.append(f"fields.{i}.to: target {rule.to!r} is mapped twice")
        seen.add(rule.to)
        for j, source in enumerate(rule.from_):
            if not source or any(not part for part in source.split(".")):
                problems.append(f"fields.{i}.from.{j}: {source!r} is not a dotted path")
    if raw.compose is not None:
        for j, part in enumerate(raw.compose.from_):
            if part not in seen:
                problems.append(f"compose.from.{j}: {part!r} is not a target of any rule")
    return problems


def _reserved_traits(raw: _SpecFile) -> frozenset[str]:
    roots = {_split(root) for root in raw.custom_sources}
    reserved = set(raw.excluded_traits)
    for rule in raw.fields:
        for source in rule.from_:
            path = _split(source)
            if path[:-1] in roots:
                reserved.add(path[-1])
    return frozenset(reserved)


def _reader_index(raw: _SpecFile) -> tuple[tuple[Path_, ...], tuple[Readers, ...]]:
    # Custom roots first, in their order: it decides which root wins a custom trait.
    parents: dict[Path_, int] = {_split(root): i for i, root in enumerate(raw.custom_sources)}
    readers: list[Readers] = [{} for _ in parents]
    for index, rule in enumerate(raw.fields):
        for preference, path in enumerate(rule.from_):
            parent, key = _split(path)[:-1], _split(path)[-1]
            if parent not in parents:
                parents[parent] = len(parents)
                readers.append({})
            table = readers[parents[parent]]
            table[key] = (*table.get(key, ()), (index, preference))
    return tuple(parents), tuple(readers)


def parse_spec(data: Any, source: str) -> ObjectSpec:
    """Validate one mapping document; raise MappingSpecError listing every problem."""
    try:
        raw = _SpecFile.model_validate(data)
    except ValidationError as exc:
        raise MappingSpecError(source, _pydantic_problems(exc)) from None
    problems = _meaning_problems(raw)
    if problems:
        raise MappingSpecError(source, problems)
    roots, readers = _reader_index(raw)
    custom = {_split(root) for root in raw.custom_sources}
    fields = tuple(
        FieldRule(
            to=rule.to,
            sources=tuple(_split(s) for s in rule.from_),
            coerce_name=rule.coerce,
            coerce=COERCIONS[rule.coerce],
            required=rule.required,
            index=index,
        )
        for index, rule in enumerate(raw.fields)
    )
    return ObjectSpec(
        object=raw.object,
        fields=fields,
        required=tuple(rule for rule in fields if rule.required is not None),
        roots=roots,
        readers=readers,
        custom_roots=tuple(root in custom for root in roots),
        custom_sources=tuple(_split(root) for root in raw.custom_sources),
        reserved_traits=_reserved_traits(raw),
        compose=Compose(raw.compose.to, tuple(raw.compose.from_)) if raw.compose else None,
        standard_fields=frozenset(rule.to for rule in raw.fields),
    )


def load_spec(path: Path) -> ObjectSpec:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingSpecError(str(path), [f"cannot read: {exc}"]) from None
    return parse_spec(data, str(path))


def mappings_dir() -> Path:
    """The shipped mappings: inside the installed wheel, else the repository's mappings/."""
    packaged = Path(str(resources.files("destination"))) / "_mappings"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "mappings"


def load_specs(directory: Path | None = None) -> Specs:
    """Load person.yaml and company.yaml, reporting the problems of both files together."""
    directory = directory or mappings_dir()
    loaded: dict[str, ObjectSpec] = {}
    errors: list[MappingSpecError] = []
    for name in ("person", "company"):
        try:
            loaded[name] = load_spec(directory / f"{name}.yaml")
        except MappingSpecError as exc:
            errors.append(exc)
    if errors:
        raise MappingSpecError(str(directory), [f"{e.source}: {p}" for e in errors for p in e.problems])
    company = loaded["company"]
    return Specs(person=loaded["person"], company=company, company_unnamed=without_required(company, "Name"))


@functools.cache
def default_specs() -> Specs:
    """The shipped specs, loaded on first use and then kept."""
    return load_specs()
