"""The Gainsight endpoints the simulator serves: one table for the routes and for the gateway.

Both People paths are served by the same handler: which one current docs show is uncertain
(reference §3.1), so a client may use either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from destination.simulator.config import EndpointKind, EndpointName

PEOPLE_PATHS = ("/v1.0/api/people", "/v1/peoplemgmt/v1.0/people")
COMPANY_QUERY_PATH = "/v1/data/objects/query/Company"
COMPANY_PATH = "/v1/data/objects/Company"
OBJECT_QUERY_PATH = "/v1/data/objects/query/{object_name}"  # custom objects: after Company's
OBJECT_PATH = "/v1/data/objects/{object_name}"
EVENTS_PATH = "/v1.0/api/eventManager/event"
ACTIVITY_PATH = "/v1/ant/es/activity"
ADMIN_PREFIX = "/__sim"


@dataclass(frozen=True)
class Endpoint:
    name: EndpointName
    kind: EndpointKind
    method: str
    path: str  # FastAPI path template
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(self.path))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))


ENDPOINTS: tuple[Endpoint, ...] = (
    *(Endpoint("people.upsert", "people", "PUT", path) for path in PEOPLE_PATHS),
    *(Endpoint("people.ping", "people", "GET", path) for path in PEOPLE_PATHS),
    Endpoint("company.query", "company", "POST", COMPANY_QUERY_PATH),
    Endpoint("company.insert", "company", "POST", COMPANY_PATH),
    Endpoint("company.update", "company", "PUT", COMPANY_PATH),
    Endpoint("company.delete", "company", "DELETE", COMPANY_PATH + "/{gsid}"),
    Endpoint("object.query", "object", "POST", OBJECT_QUERY_PATH),
    Endpoint("object.insert", "object", "POST", OBJECT_PATH),
    Endpoint("object.update", "object", "PUT", OBJECT_PATH),
    Endpoint("events.publish", "events", "POST", EVENTS_PATH),
    Endpoint("timeline.activity", "timeline", "POST", ACTIVITY_PATH),
)


def match_endpoint(method: str, path: str) -> Endpoint | None:
    for endpoint in ENDPOINTS:
        if endpoint.method == method and endpoint.pattern.match(path):
            return endpoint
    return None
