"""Read a transformer request's JSON, parsing the destination its items repeat only once.

rudder-server sends every event with its whole destination (settings, definition…), so most of
a 100-event request is the same destination object written 100 times: parsing each copy was
more than half of the parsing, which was a quarter of a request's CPU. When the first item's
`"destination":{…}` recurs byte for byte, each copy is replaced by a marker before parsing, and
the items get one shared parse of it back (read-only from here on, like every input).

Nothing is taken on trust: the copies are found as whole values (the first one's span parses by
itself, and a span is self-delimiting), and every marker must come back as an item's own
`destination`. Any other outcome (a copy inside a message, a marker already in the body, input
that is not JSON) parses the request plainly, so the answer is always that of a plain parse.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import HTTPException

from destination.api.body import parse_json

_KEY = b'"destination":'
_MARKER_TEXT = "\x00gsd:repeated-destination"
_MARKER = _KEY + orjson.dumps(_MARKER_TEXT)
_MARKER_WORDS = b"gsd:repeated-destination"  # in a body, it is parsed plainly
_BRACES = re.compile(rb"[{}]")
_MIN_COPIES = 2  # below this, sharing saves nothing


def parse_items(raw: bytes, items_key: str | None) -> Any:
    """The request's JSON: the items are the document itself (`items_key` None, the processor
    route) or its `items_key` member (the router's `input`). 400 when it is not JSON, or
    nests deeper than orjson writes (254 levels): answers embed their items' values."""
    shared = _shared_parse(raw, items_key)
    if shared is not None:
        return shared
    value = parse_json(raw, max_depth=None)
    _check_writable(value)
    return value


def _check_writable(value: Any) -> None:
    # Writing with orjson is C speed and refuses what nests deeper than it can write; nothing
    # here is stored, and an answer nests at most one level deeper than its input.
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise HTTPException(400, "request body nests JSON deeper than 254 levels") from None


def _shared_parse(raw: bytes, items_key: str | None) -> Any:
    """The document with one parse of its repeated destination shared, or None: parse plainly."""
    start = raw.find(_KEY)
    if start < 0 or raw.find(_KEY, start + len(_KEY)) < 0 or _MARKER_WORDS in raw:
        return None  # nothing repeats (one item), or the body names the marker
    value_start = start + len(_KEY)
    end = _object_end(raw, value_start)
    if end < 0:
        return None
    reduced, copies = _replace_copies(raw, raw[start:end])
    if copies < _MIN_COPIES:
        return None
    try:
        destination = orjson.loads(raw[value_start:end])
        document = orjson.loads(reduced)
    except orjson.JSONDecodeError:
        return None
    items = document if items_key is None else document.get(items_key) if isinstance(document, dict) else None
    if not isinstance(items, list) or not isinstance(destination, dict):
        return None
    _check_writable(document)
    # Where the destination sits: in an item, in the items (in the router's body, one deeper).
    _check_writable([[destination]] if items_key is None else [[[destination]]])
    marked = [item for item in items if isinstance(item, dict) and item.get("destination") == _MARKER_TEXT]
    if len(marked) != copies:
        return None  # a copy was not an item's own destination
    for item in marked:
        item["destination"] = destination
    return document


def _object_end(raw: bytes, start: int) -> int:
    """The end of the object starting at `start` if braces inside strings do not mislead the
    count (the caller's parse of the span checks that), else -1."""
    if raw[start : start + 1] != b"{":
        return -1
    depth = 0
    for brace in _BRACES.finditer(raw, start):
        if raw[brace.start()] == ord("{"):
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return brace.end()
    return -1


def _replace_copies(raw: bytes, span: bytes) -> tuple[bytes, int]:
    """`raw` with each copy of `span` replaced by the marker, and how many there were. The key
    is searched for, and the rest compared in place: searching for the whole span took longer
    than parsing it."""
    pieces: list[bytes] = []
    copies = position = 0
    at = raw.find(span)  # the first copy is where span was taken from
    while at >= 0:
        pieces += (raw[position:at], _MARKER)
        position = at + len(span)
        copies += 1
        at = raw.find(_KEY, position)
        while at >= 0 and not raw.startswith(span, at):
            at = raw.find(_KEY, at + 1)
    pieces.append(raw[position:])
    return b"".join(pieces), copies
