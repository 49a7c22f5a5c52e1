"""Show planned requests: RudderStack's REST envelope, and the dry-run description (secrets hidden)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destination.gainsight.plan import GroupPlan, Plan, Request


def rudder_output(request: Request, headers: Mapping[str, str]) -> dict[str, Any]:
    """The transformer protocol's request envelope, as the reference builds it (the processor
    route adds `userId: ""`; the router's `batchedRequest` has none)."""
    return {
        "version": "1",
        "type": "REST",
        "method": request.method,
        "endpoint": request.endpoint,
        "headers": headers if type(headers) is dict else dict(headers),  # never mutated
        "params": dict(request.params) if request.params else {},
        "body": {"JSON": request.body, "JSON_ARRAY": {}, "XML": {}, "FORM": {}},
        "files": {},
    }


def describe_request(request: Request, step: str, when: str | None = None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "step": step,
        "method": request.method,
        "endpoint": request.endpoint,
        "params": dict(request.params),
        "headers": request.redacted_headers(),
        "body": request.body,
    }
    if request.signing is not None:
        described["signed"] = "X-Payload-Signature (HS256 JWT) is added when the request is sent"
    if when is not None:
        described["when"] = when
    return described


def _group_steps(plan: GroupPlan) -> list[dict[str, Any]]:
    gsid = f"<Gsid of company {plan.company_name!r}>"
    return [
        describe_request(plan.search_request(), "company search", "unless the company's Gsid is known"),
        describe_request(plan.insert_request(), "company insert", "when the search finds no company"),
        describe_request(plan.update_request(), "company update", "when the company exists"),
        describe_request(plan.association_request(gsid), "person association"),
    ]


def describe_plan(plan: Plan) -> dict[str, Any]:
    """The dry-run form of a plan: every request it may send, in order, and its diagnostics."""
    if isinstance(plan, GroupPlan):
        requests = _group_steps(plan)
    else:
        step = "person upsert" if plan.kind == "identify" else "event publish"
        requests = [describe_request(plan.request, step)]
    return {
        "type": plan.kind,
        "requests": requests,
        "diagnostics": [d.as_dict() for d in plan.diagnostics],
    }
