"""The only module that talks HTTP to Gainsight. It sends planned Requests and returns Answers.

Plans hold no secret: `send` adds the destination's credentials (Accesskey; for a signed track,
sharedSecret and a fresh X-Payload-Signature) as it sends. `GSD_GAINSIGHT_BASE_URL` (base_url)
redirects every call, e.g. to the simulator; plans still name `https://{domain}`, while an
attempt's history records the URL actually called. A `gate` (the rate governor) is awaited
before every call, and `observe` sees every answer. The executor's stages send through `call`:
at most `calls_in_flight` calls at once, each recorded as a `Call`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from destination.config import DestinationConfig
from destination.errors import GainsightError
from destination.gainsight import endpoints as ep
from destination.gainsight.outcomes import Answer, classify, failure
from destination.gainsight.requests import Request, Step
from destination.gainsight.signing import sign
from destination.jsonutil import JSONDecodeError, dumps, loads
from destination.settings import default

Gate = Callable[[str, str], Awaitable[None]]
"""Awaited before each call with (tenant domain, step): the step picks the budget class."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a destination authenticates with, and the id its calls are counted under."""

    destination: str  # the metrics label: a destination id, never a tenant domain
    access_key: str | None = field(default=None, repr=False)
    shared_secret: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, destination: str, config: DestinationConfig) -> Credentials:
        return cls(
            destination,
            config.access_key.get_secret_value() if config.access_key else None,
            config.shared_secret.get_secret_value() if config.shared_secret else None,
        )


Observer = Callable[[Credentials, Request, Answer], None]


@dataclass(frozen=True, slots=True)
class Call:
    """One call made: its id (shared by every event that rode on it) and the request as sent."""

    id: str
    step: Step
    request: dict[str, Any]  # secrets masked
    answer: Answer


def masked(headers: dict[str, str]) -> dict[str, str]:
    """Headers for display and history: credentials and the signature replaced by REDACTED."""
    return {k: (ep.REDACTED if k in ep.SECRET_HEADERS else v) for k, v in headers.items()}


def shown_headers(request: Request, credentials: Credentials) -> dict[str, str]:
    """The headers a request is sent with, credentials masked (dry run, admin views)."""
    headers = dict(request.headers)
    if request.step == "event publish":
        headers[ep.SHARED_SECRET_HEADER] = ep.REDACTED
    if credentials.access_key:
        headers[ep.ACCESS_KEY_HEADER] = ep.REDACTED
    return headers


def described(request: Request, headers: dict[str, str], url: str | None = None) -> dict[str, Any]:
    """The request as an attempt's history keeps it (DESIGN §9): secrets masked; `url`: where it
    was sent, when not the plan's own endpoint."""
    url = url or request.endpoint
    if request.params:
        url += "?" + "&".join(f"{k}={v}" for k, v in request.params.items())
    return {"method": request.method, "url": url, "headers": masked(headers), "body": request.body}


CONNECT_TIMEOUT_SECONDS = 5.0


def http_timeout(seconds: float) -> httpx.Timeout:
    """A call's whole time limit (GSD_GAINSIGHT_TIMEOUT_SECONDS); connecting gets less of it."""
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_SECONDS))


DEFAULT_TIMEOUT = http_timeout(default("gainsight_timeout_seconds"))
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)
CALLS_IN_FLIGHT = 8  # the fewest call slots a process has (app.py: twice the workers, when more)


def new_http_client(
    transport: httpx.AsyncBaseTransport | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeout, limits=DEFAULT_LIMITS, transport=transport, follow_redirects=False
    )


class GainsightClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str | None = None,
        gate: Gate | None = None,
        observe: Observer | None = None,
        clock: Callable[[], float] = time.time,
        calls_in_flight: int = CALLS_IN_FLIGHT,
    ) -> None:
        self._observe = observe
        self._slots = asyncio.Semaphore(calls_in_flight)
        self._http = http
        self._base_url = base_url.rstrip("/") if base_url else None
        self._gate = gate
        self._clock = clock

    def url_for(self, request: Request) -> str:
        return f"{self._base_url}{request.path}" if self._base_url else request.endpoint

    def headers_for(self, request: Request, credentials: Credentials) -> dict[str, str]:
        """The headers to send: the plan's, the credentials, and a fresh signature when signed."""
        headers = dict(request.headers)
        if request.step == "event publish":
            secret = credentials.shared_secret or ""
            headers[ep.SHARED_SECRET_HEADER] = secret
            if request.signing is not None:
                headers[ep.SIGNATURE_HEADER] = sign(request.signing, secret, self._clock())
        if credentials.access_key:
            headers[ep.ACCESS_KEY_HEADER] = credentials.access_key
        return headers

    async def call(self, request: Request, credentials: Credentials) -> Call:
        """Send one request in a call slot; OverBudget propagates (nothing was sent)."""
        async with self._slots:
            return await self.send(request, credentials)

    def slot(self) -> asyncio.Semaphore:
        """A call slot, for a caller that holds one around more than the call (then `send`)."""
        return self._slots

    async def send(self, request: Request, credentials: Credentials) -> Call:
        """`call` for a caller that holds a call slot already."""
        answer, sent = await self.send_described(request, credentials)
        return Call(uuid.uuid4().hex[:16], request.step, sent, answer)

    async def send_described(
        self, request: Request, credentials: Credentials
    ) -> tuple[Answer, dict[str, Any]]:
        """Perform one call; its answer (HTTP failures are answers too: nothing here raises for
        them) and the request as sent, its secrets masked."""
        if self._gate is not None:
            await self._gate(request.domain, request.step)
        headers = self.headers_for(request, credentials)
        answer = await self._perform(request, headers)
        if self._observe is not None:
            self._observe(credentials, request, answer)
        return answer, described(request, headers, self.url_for(request))

    async def _perform(self, request: Request, headers: dict[str, str]) -> Answer:
        content = request.body_bytes if request.body_bytes is not None else dumps(request.body)
        try:
            response = await self._http.request(
                request.method,
                self.url_for(request),
                params=dict(request.params),
                headers=headers,
                content=content,
            )
        except httpx.TimeoutException:
            return Answer(None, transport_error="timed out")
        except httpx.TransportError as exc:
            return Answer(None, transport_error=f"{type(exc).__name__}: connection failed")
        # Read and closed by now. httpx binds the stream back to its response, a reference cycle
        # that only the cycle collector frees: at serve's young threshold (GSD_GC_YOUNG_THRESHOLD)
        # a few thousand calls' requests and responses would wait for it (DESIGN §8, RSS).
        del response.stream
        try:
            body = loads(response.content) if response.content else None
        except JSONDecodeError:
            body = {"text": response.text[:500]}
        return Answer(response.status_code, body, dict(response.headers))

    def failure(self, answer: Answer, step: str) -> GainsightError:
        """The error for an answer that is not delivered, timed by this client's clock."""
        return failure(answer, step, self._clock())

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = [
    "Answer",
    "Call",
    "Credentials",
    "GainsightClient",
    "GainsightError",
    "classify",
    "new_http_client",
]
