"""Sandbox mode (DESIGN §4.1): no destinations configured, so `serve` embeds the Gainsight
simulator and one destination wired to it, with sample event maps and custom fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from destination.config import Destination
from destination.settings import SANDBOX_USAGE_FLUSH_SECONDS
from destination.simulator import SANDBOX, SimulatorConfig, create_simulator_app

SANDBOX_DESTINATION_ID = "sandbox"
SANDBOX_DOMAIN = "sandbox.gainsightcloud.com"

# Segment-spec event names a user is likely to send, mapped onto the sandbox tenant's events.
_EVENT_NAMES = {
    "ticket_closed": "Ticket Closed",
    "feature_used": "Feature Used",
    "order_completed": "Order Completed",
}
# Who the sandbox's Timeline activities are written by ("Meeting Booked" becomes a Meeting).
SANDBOX_AUTHOR = "csm@sandbox.example.com"
# Usage counts (DESIGN §3.7) into the sandbox tenant's ProductUsage__gc, as the README's example.
SANDBOX_USAGE = {
    "object": "ProductUsage__gc",
    "fields": {
        "company": "Company__gc",
        "date": "UsageDate__gc",
        "metric": "Metric__gc",
        "count": "Count__gc",
    },
    "events": ["Report Exported", "Dashboard Viewed"],
}

# Trait → custom field, for every custom field the sandbox tenant defines.
_TRAITS = {"Seats__gc": "seats", "Plan__gc": "plan", "Region__gc": "region", "Tier__gc": "tier"}


def sandbox_destination() -> Destination:
    return Destination.model_validate(
        {
            "id": SANDBOX_DESTINATION_ID,
            "config": {
                "domain": SANDBOX_DOMAIN,
                "accessKey": SANDBOX.access_key,
                "sharedSecret": SANDBOX.shared_secret,
                "tenantId": SANDBOX.tenant_id,
                "topicName": SANDBOX.topic,
                "eventNameMap": [{"from": _EVENT_NAMES[n], "to": n} for n, _ in SANDBOX.events],
                "eventVersionMap": [{"from": _EVENT_NAMES[n], "to": v} for n, v in SANDBOX.events],
                "personMap": [{"from": _TRAITS[f], "to": f} for f, _ in SANDBOX.person_fields],
                "companyMap": [{"from": _TRAITS[f], "to": f} for f, _ in SANDBOX.company_fields],
                "timeline": {
                    "author": SANDBOX_AUTHOR,
                    "activities": [{"event": "Meeting Booked", "type": "Meeting"}],
                },
                "usage": SANDBOX_USAGE,
            },
        }
    )


@dataclass(frozen=True)
class Sandbox:
    app: FastAPI
    destination: Destination

    @classmethod
    def create(cls) -> Sandbox:
        return cls(create_simulator_app(SimulatorConfig.sandbox()), sandbox_destination())


def sandbox_banner(application: Any, host: str, port: int, redirected_to: str | None = None) -> str | None:
    """What `serve` prints in sandbox mode: what runs, the sample maps, and curl lines to try."""
    runtime_sandbox = any(getattr(r, "path", "") == "/gainsight" for r in getattr(application, "routes", []))
    if not runtime_sandbox:
        return None
    base = f"http://{host}:{port}"
    config = sandbox_destination().config
    events = ", ".join(f"{m.from_!r} -> {m.to}" for m in config.event_name_map)
    traits = ", ".join(f"{m.from_} -> {m.to}" for m in (*config.person_map, *config.company_map))
    identify = (
        '{"userId":"u1","traits":{"email":"ada@example.com","firstName":"Ada",'
        '"lastName":"Lovelace","seats":5}}'
    )
    group = (
        '{"userId":"u1","groupId":"g1","traits":{"name":"Acme Ltd","employees":120,"region":"EMEA"},'
        '"context":{"traits":{"email":"ada@example.com"}}}'
    )
    track = '{"userId":"u1","event":"Ticket Closed","properties":{"ticketId":"T-42","status":"resolved"}}'
    counted = '{"userId":"u1","event":"Report Exported"}'
    return "\n".join(
        [
            "gainsight-destination: SANDBOX MODE (no destinations configured)",
            f"  an embedded Gainsight simulator answers at {base}/gainsight"
            + (" (nothing leaves this machine)" if redirected_to is None else ""),
            "  inbound auth is off; events are stored in ./data/ and delivered to "
            + ("the simulator" if redirected_to is None else f"{redirected_to} (GSD_GAINSIGHT_BASE_URL)"),
            f"  sample event maps: {events}",
            f"  sample custom fields: {traits}",
            f"  usage counts: {', '.join(SANDBOX_USAGE['events'])} -> {SANDBOX_USAGE['object']}"
            f" (written every {SANDBOX_USAGE_FLUSH_SECONDS:g} s)",
            "",
            "Send a first event:",
            f"  curl -s -X POST {base}/v1/identify -H 'Content-Type: application/json' -d '{identify}'",
            f"  curl -s -X POST {base}/v1/group -H 'Content-Type: application/json' -d '{group}'",
            f"  curl -s -X POST {base}/v1/track -H 'Content-Type: application/json' -d '{track}'",
            f"  curl -s -X POST {base}/v1/track -H 'Content-Type: application/json' -d '{counted}'",
            "See it arrive:",
            f"  curl -s {base}/gainsight/__sim/people",
            f"  curl -s {base}/gainsight/__sim/companies",
            f"  curl -s {base}/gainsight/__sim/events",
            f'  curl -s {base}/gainsight/__sim/activities   (a track "Meeting Booked" becomes a Meeting)',
            f"  curl -s {base}/gainsight/__sim/objects/{SANDBOX_USAGE['object']}   # a few seconds later",
            f"Listening on {base}  (GSD_DESTINATIONS=path/to/destinations.yaml for real tenants)",
        ]
    )
