"""The email check's string-method fast path answers exactly what its pattern does."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from destination.gainsight.emails import EMAIL, looks_like_email

# The characters the rule turns on: "@", ".", ASCII and Unicode whitespace, and others.
_TRICKY = st.sampled_from(list("ab@@..1é \t\n\x0b\x1c\x85\xa0\u2028\u3000"))


def _by_pattern(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 320 and EMAIL.fullmatch(value.strip()) is not None


@settings(max_examples=3000)
@given(st.one_of(st.text(_TRICKY, max_size=14), st.text(max_size=14)))
def test_the_fast_email_check_agrees_with_the_pattern(value: str) -> None:
    assert looks_like_email(value) is _by_pattern(value)


def test_the_fast_email_check_on_the_edges() -> None:
    for value in [
        "a@b.c",
        "@b.c",
        "a@.c",
        "a@b.",
        "a@b..c",
        "a@@b.c",
        " a@b.c ",
        "a@b.c\n",
        "x" * 320 + "@b.c",
    ]:
        assert looks_like_email(value) is _by_pattern(value), value
    assert looks_like_email("ada@example.com") and not looks_like_email("n/a")
    assert not looks_like_email(None) and not looks_like_email(42)
