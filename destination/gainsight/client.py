"""The only module that talks HTTP to Gainsight. It sends planned Requests and returns Answers.

`GSD_GAINSIGHT_BASE_URL` (base_url) redirects every call, e.g. to the simulator; plans still
name `https://{domain}`. A `gate` (the rate governor) is awaited before every call.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx

from destination.errors import GainsightError
from destination.gainsight import endpoints as ep
from destination.gainsight.outcomes import Answer, classify, failure
from destination.gainsight.plan import Request
from destination.gainsight.signing import sign
from destination.jsonutil import JSONDecodeError, dumps, loads

Gate = Callable[[str], Awaitable[None]]
Observer = Callable[[Request, Answer], None]

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32)


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
    ) -> None:
        self._observe = observe
        self._http = http
        self._base_url = base_url.rstrip("/") if base_url else None
        self._gate = gate
        self._clock = clock

    def url_for(self, request: Request) -> str:
        return f"{self._base_url}{request.path}" if self._base_url else request.endpoint

    def headers_for(self, request: Request) -> dict[str, str]:
        """The headers to send, with a fresh signature when the request is signed."""
        headers = dict(request.headers)
        if request.signing is not None:
            secret = headers[ep.SHARED_SECRET_HEADER]
            headers[ep.SIGNATURE_HEADER] = sign(request.signing, secret, self._clock())
        return headers

    async def send(self, request: Request) -> Answer:
        """Perform one call. HTTP failures are Answers too; nothing here raises for them."""
        if self._gate is not None:
            await self._gate(request.domain)
        answer = await self._perform(request)
        if self._observe is not None:
            self._observe(request, answer)
        return answer

    async def _perform(self, request: Request) -> Answer:
        content = request.body_bytes if request.body_bytes is not None else dumps(request.body)
        try:
            response = await self._http.request(
                request.method,
                self.url_for(request),
                params=dict(request.params),
                headers=self.headers_for(request),
                content=content,
            )
        except httpx.TimeoutException:
            return Answer(None, transport_error="timed out")
        except httpx.TransportError as exc:
            return Answer(None, transport_error=f"{type(exc).__name__}: connection failed")
        try:
            body = loads(response.content) if response.content else None
        except JSONDecodeError:
            body = {"text": response.text[:500]}
        return Answer(response.status_code, body, dict(response.headers))

    async def execute(self, request: Request, step: str) -> Answer:
        """Send, and raise GainsightError (throttled / retryable / aborted) unless delivered."""
        answer = await self.send(request)
        if classify(answer) != "delivered":
            raise self.failure(answer, step)
        return answer

    def failure(self, answer: Answer, step: str) -> GainsightError:
        return failure(answer, step, self._clock())

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = ["Answer", "GainsightClient", "GainsightError", "new_http_client"]
