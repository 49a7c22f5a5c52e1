"""JSON in and out, with the exact byte forms the product promises.

Parsing is orjson's, which reads like JavaScript's JSON.parse (so like the reference transformer):
integers beyond 64 bits become floats; it refuses what cannot be stored and sent again (numbers
that overflow to infinity, lone UTF-16 surrogates). Writing falls back to the standard library
only for Python values orjson cannot write (integers beyond 64 bits made by our own code).
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class JSONDecodeError(ValueError):
    """The bytes are not one valid JSON document."""


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JSONDecodeError(str(exc)) from None


def trimmed(data: bytes) -> bytes:
    """orjson's output as bytes that hold only their length. orjson (3.12 on) hands back its
    working buffer, at least 4 KiB and a power of two past that, whatever the text's length: a
    65-byte track body held by a plan in flight, a payload waiting for its commit, an attempt's
    request and answer, a cache key then hold 4 KiB each (15 MB of the service's RSS in
    bench/soak.py at 200,000 events). The copy costs a fraction of a microsecond."""
    return bytes(memoryview(data))


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, UTF-8, non-ASCII kept as is."""
    try:
        return trimmed(orjson.dumps(obj))
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def canonical_json(obj: Any) -> bytes:
    """Keys sorted at every level, no whitespace, UTF-8, non-ASCII not escaped (DESIGN §3.4)."""
    try:
        return trimmed(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    except TypeError:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _js_number_form(obj: Any) -> Any:
    """Integral floats become ints, as JavaScript prints them (1.0 -> 1)."""
    if isinstance(obj, float) and obj.is_integer() and abs(obj) < 2**53:
        return int(obj)
    if isinstance(obj, dict):
        return {k: _js_number_form(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_js_number_form(v) for v in obj]
    return obj


def js_json_text(obj: Any) -> str:
    """The text JSON.stringify writes for a JSON value: compact, insertion order kept."""
    return dumps(_js_number_form(obj)).decode()
