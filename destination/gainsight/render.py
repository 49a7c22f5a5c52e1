"""Show planned requests: RudderStack's REST envelope, and the dry-run description (secrets hidden)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destination.gainsight.client import Credentials, shown_headers
from destination.gainsight.company_states import group_steps
from destination.gainsight.plan import DeliveryPlan, GroupPlan
from destination.gainsight.requests import Request
from destination.gainsight.timeline import ActivityPlan
from destination.gainsight.usage import CountPlan, describe_count


def rudder_output(request: Request, headers: Mapping[str, str]) -> dict[str, Any]:
    """The transformer protocol's request envelope for a planned request, as the reference
    builds it (the processor route adds `userId: ""`; the router's `batchedRequest` has none)."""
    return rest_output(
        request.method,
        request.endpoint,
        headers if type(headers) is dict else dict(headers),
        request.body,
        dict(request.params) if request.params else None,
    )


def rest_output(
    method: str, endpoint: str, headers: dict[str, str], body: Any, params: dict[str, str] | None = None
) -> dict[str, Any]:
    """The same envelope from its parts: the transformer's identify and track outputs are made
    straight from the event, without a plan (gainsight/transformer.py). `headers` may be shared
    between outputs: nothing mutates them."""
    return {
        "version": "1",
        "type": "REST",
        "method": method,
        "endpoint": endpoint,
        "headers": headers,
        "params": params or {},
        "body": {"JSON": body, "JSON_ARRAY": {}, "XML": {}, "FORM": {}},
        "files": {},
    }


def describe_request(request: Request, credentials: Credentials, when: str | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "step": request.step,
        "method": request.method,
        "endpoint": request.endpoint,
        "params": dict(request.params),
        "headers": shown_headers(request, credentials),
        "body": request.body,
    }
    if request.signing is not None:
        described["signed"] = "X-Payload-Signature (HS256 JWT) is added when the request is sent"
    if when is not None:
        described["when"] = when
    return described


RESOLVED_AT_DELIVERY = "resolved at delivery"


def _activity_requests(plan: ActivityPlan, credentials: Credentials) -> list[dict[str, Any]]:
    """The activity (its company's Gsid found when it is delivered), then the publish if asked."""
    requests = [describe_request(plan.request(RESOLVED_AT_DELIVERY, None), credentials)]
    if plan.publish is not None:
        when = "once the activity is written (alsoPublish)"
        requests.append(describe_request(plan.publish.request, credentials, when))
    return requests


def _activity_company(plan: ActivityPlan) -> dict[str, Any]:
    """Where the activity's company comes from (DESIGN §3.6)."""
    source = plan.company
    company: dict[str, Any] = {"gsid": RESOLVED_AT_DELIVERY, "from": "the person's last group event"}
    if source.field is not None:
        company["else"] = {"key": source.field, "value": source.value}  # context.groupId
    return company


def describe_plan(plan: DeliveryPlan, credentials: Credentials) -> dict[str, Any]:
    """The dry-run form of a plan: every request it may send, in order, and its diagnostics."""
    if isinstance(plan, GroupPlan):
        requests = [describe_request(r, credentials, when) for r, when in group_steps(plan)]
    elif isinstance(plan, ActivityPlan):
        requests = _activity_requests(plan, credentials)
    elif isinstance(plan, CountPlan):  # counted, not published one by one (DESIGN §3.7)
        when = "once counted (usage.publish)"
        requests = [describe_request(plan.publish.request, credentials, when)] if plan.publish else []
    else:
        requests = [describe_request(plan.request, credentials)]
    described: dict[str, Any] = {
        "type": plan.kind,
        "requests": requests,
        "diagnostics": [d.as_dict() for d in plan.diagnostics],
    }
    if isinstance(plan, GroupPlan):
        # How the company is found (DESIGN §3.3): by Name, or by the tenant's own key.
        described["company"] = {"key": plan.key_field, "value": plan.key_value, "create": plan.create}
    elif isinstance(plan, ActivityPlan):
        described["sink"] = "timeline"
        described["company"] = _activity_company(plan)
    elif isinstance(plan, CountPlan):
        described["sink"] = "usage"
        described["count"] = describe_count(plan)
    return described
