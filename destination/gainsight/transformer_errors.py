"""How the transformer routes answer an item that failed, in the reference's words: its
`statusCode`, its `error` text and its `statTags` (rudder-server retries 429 and 5xx, drops
other 4xx, and counts errors by these tags)."""

from __future__ import annotations

from typing import Literal

from destination.errors import GainsightError, GsdError
from destination.jsonutil import js_json_text

Feature = Literal["processor", "router"]
DEST_TYPE = "GAINSIGHT"

# The reference's words for the Company call that failed ("failed to search group {…}").
_REFERENCE_STEP = {"company search": "search", "company insert": "create", "company update": "update"}
# A Gainsight answer longer than this is cut in an item's error: one request may hold 1,000 items.
_MAX_ERROR_RESPONSE_CHARS = 4096


def error_status(error: GsdError) -> int:
    """The item's statusCode: Gainsight's own HTTP status when a call failed, as the reference
    answers, else by the error's kind."""
    if isinstance(error, GainsightError) and error.http_status and error.http_status >= 400:
        return error.http_status
    return error.status_code


def error_text(error: GsdError) -> str:
    """The item's `error`. A failed Company call reads as the reference writes it: the JSON text
    `{"message": "failed to <verb> group <answer>", "destinationResponse": {"response", "status"}}`."""
    verb = _REFERENCE_STEP.get(error.step or "") if isinstance(error, GainsightError) else None
    if verb is None or not isinstance(error, GainsightError) or error.http_status is None:
        return error.message
    response = error.response
    answer_text = js_json_text(response)
    if len(answer_text) > _MAX_ERROR_RESPONSE_CHARS:
        answer_text = answer_text[:_MAX_ERROR_RESPONSE_CHARS] + "…"
        response = answer_text
    return js_json_text(
        {
            "message": f"failed to {verb} group {answer_text}",
            "destinationResponse": {"response": response, "status": error.http_status},
        }
    )


def stat_tags(error: GsdError, feature: Feature) -> dict[str, str]:
    return {
        "errorCategory": error.error_category,
        "errorType": error.error_type,
        "destType": DEST_TYPE,
        "module": "destination",
        "implementation": "native",
        "feature": feature,
    }
