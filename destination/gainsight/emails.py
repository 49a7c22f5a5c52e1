"""What passes for an email address in the events (identify's Email, group's context.traits.email)."""

from __future__ import annotations

import re
from typing import Any

from destination.errors import EventError

# Not RFC 5322: enough to refuse what is plainly not an address (an object, "n/a", "a b@c"),
# which Gainsight would refuse anyway, one failed call later.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def looks_like_email(value: Any) -> bool:
    """`EMAIL` fully matches the stripped value. Without whitespace (no space, all printable),
    which is nearly always, that is: one "@" after the first character, and a "." after the
    one that follows it, before the last character: string methods answer that cheaper."""
    if not isinstance(value, str) or len(value) > 320:
        return False
    if " " not in value and value.isprintable():
        at = value.find("@")
        dot = value.find(".", at + 2)
        return at > 0 and value.find("@", at + 1) == -1 and 0 < dot < len(value) - 1
    return EMAIL.fullmatch(value.strip()) is not None


def check_email(value: Any, field_name: str) -> str:
    """`value` when it looks like an address; else EventError naming `field_name`."""
    if not isinstance(value, str):
        raise EventError(f"{field_name} must be a string (an email address), got {type(value).__name__}")
    if len(value) > 320 or EMAIL.fullmatch(value.strip()) is None:
        raise EventError(f"{field_name} does not look like an email address")
    return value
