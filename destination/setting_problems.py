"""Problems with settings, each naming where it is (`personMap[0].to: …`), with a "did you mean"
for a misspelt key: for config.py's loading and validate-config's report (config_check.py)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError


def unknown_keys(
    found: Iterable[Any], known: Iterable[str], *, ignored: Iterable[str] = (), what: str = "setting"
) -> list[str]:
    """`key: unknown setting; did you mean …?` (else the known keys) per key not in `known`."""
    known = sorted(known)
    skipped = {*known, *ignored}
    by_lower = {key.lower(): key for key in known}
    problems = []
    for key in found:
        if key in skipped:
            continue
        guess = by_lower.get(str(key).lower()) or next(
            iter(difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)), None
        )
        hint = f"did you mean {guess}?" if guess else f"known {what}s: {', '.join(known)}"
        problems.append(f"{key}: unknown {what}; {hint}")
    return problems


def _setting_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(settings)"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """Every problem, each naming the setting: `personMap[0].to: …; …`."""
    return "; ".join(validation_problems(exc, prefix))


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, each naming the setting: `personMap[0].to: …`."""
    lines = []
    errors = exc.errors()
    # A list whose items failed also reports itself "too short"; the item errors say it all.
    if len(errors) > 1:
        errors = [e for e in errors if e["type"] != "too_short"]
    for err in errors:
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # Model-level checks name their own setting in the message.
        lines.append(f"{prefix}{_setting_path(loc)}: {msg}" if loc else f"{prefix}{msg}")
    return lines
