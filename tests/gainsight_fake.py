"""A Gainsight for tests whose workers deliver in the background: it answers the calls the service
is meant to make (DESIGN §3) with success, and records any other call, so a test fails on it.

Used as `httpx.MockTransport(fake)`; the fixtures that hold one assert `fake.unexpected == []` when
the test ends, so a stray call (a wrong path or method) fails the test instead of meeting a 200.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson

from destination.gainsight.endpoints import COMPANY_PATH, COMPANY_QUERY_PATH, EVENT_PATH, PEOPLE_PATH


class StrictGainsight:
    def __init__(self, gsid: str | None = None) -> None:
        self.gsid = gsid  # every written company's Gsid; None: one derived from its Name
        self.calls: list[httpx.Request] = []
        self.unexpected: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        route = (request.method, request.url.path)
        if route in {("PUT", PEOPLE_PATH), ("POST", EVENT_PATH)}:
            self.calls.append(request)
            return httpx.Response(200, json={"result": True})
        if route == ("POST", COMPANY_QUERY_PATH):
            self.calls.append(request)
            return httpx.Response(200, json={"result": True, "data": {"records": []}})
        if route in {("POST", COMPANY_PATH), ("PUT", COMPANY_PATH)}:
            self.calls.append(request)
            return httpx.Response(200, json={"result": True, "data": {"records": self._written(request)}})
        self.unexpected.append(f"{request.method} {request.url}")
        return httpx.Response(404, json={"result": False, "errorDesc": "unexpected call in a test"})

    def _written(self, request: httpx.Request) -> list[dict[str, Any]]:
        records = orjson.loads(request.content).get("records", [])
        if self.gsid is not None:
            return [{"Name": r.get("Name"), "Gsid": self.gsid} for r in records]
        return [
            {"Name": r.get("Name"), "Gsid": uuid.uuid5(uuid.NAMESPACE_URL, str(r.get("Name"))).hex}
            for r in records
        ]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
