"""Mapping files are validated at load; every invalid fixture states the errors it must produce."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from destination.mapping.spec import MappingSpecError, load_spec, load_specs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mappings"
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))


def expected_errors(path: Path) -> list[str]:
    return [
        line.removeprefix("# error:").strip()
        for line in path.read_text().splitlines()
        if line.startswith("# error:")
    ]


def test_shipped_mappings_are_valid() -> None:
    specs = load_specs()
    assert specs.person.object == "Person" and specs.company.object == "Company"
    assert "Email" in specs.person.standard_fields and "Name" in specs.company.standard_fields


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_fixture_loads(path: Path) -> None:
    assert load_spec(path).fields


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_fixture_reports_every_stated_error(path: Path) -> None:
    expected = expected_errors(path)
    assert expected, f"{path.name} must state its errors in '# error:' lines"
    with pytest.raises(MappingSpecError) as caught:
        load_spec(path)
    for error in expected:
        assert any(error in problem for problem in caught.value.problems), (error, caught.value.problems)
    assert len(caught.value.problems) == len(expected)


def test_problems_of_both_files_reported_together(tmp_path: Path) -> None:
    shutil.copy(INVALID[0], tmp_path / "person.yaml")
    shutil.copy(FIXTURES / "invalid" / "duplicate-target.yaml", tmp_path / "company.yaml")
    with pytest.raises(MappingSpecError) as caught:
        load_specs(tmp_path)
    text = str(caught.value)
    assert "person.yaml" in text and "company.yaml" in text


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MappingSpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
