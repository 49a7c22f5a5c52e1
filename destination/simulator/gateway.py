"""Gainsight's API gateway, as a raw ASGI layer in front of the routes.

For every call to a Gainsight endpoint, in this order: count it against the tenant's budget
(Timeline's own class for activity saves; 429 when over), apply the injected faults, check the
access key, then hand over to the routes.
Raw ASGI because a dropped connection needs the server's own `send`, before any framework
middleware wraps it.

Dropped connections: uvicorn's `send` is a bound method of its per-request cycle object, which
holds the connection's asyncio transport (when the simulator is mounted inside another app, that
method is found in the closures of the outer middleware's send wrappers). Aborting the transport
closes the TCP connection with no HTTP bytes written; the client sees "server disconnected without
sending a response". Where no transport can be reached (in-process transports such as TestClient
or httpx.ASGITransport, which re-raise app exceptions to the caller) the gateway raises
`DroppedConnection`, an `httpx.RemoteProtocolError`: what the client would have raised on a real
drop. Under another ASGI server the same exception becomes that server's 500.
"""

from __future__ import annotations

import hmac
import math
import time
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from destination.simulator import envelope
from destination.simulator.counters import LoggedRequest, redact_query
from destination.simulator.endpoints import ADMIN_PREFIX, Endpoint, match_endpoint
from destination.simulator.faults import FaultDecision
from destination.simulator.state import Simulator


class DroppedConnection(httpx.RemoteProtocolError):
    """Stands in for a dropped TCP connection when the app runs without a real server."""

    def __init__(self) -> None:
        super().__init__("Server disconnected without sending a response.")


def route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


async def _answer(send: Send, error: envelope.SimError) -> None:
    body = envelope.error_body(error)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _server_cycle(send: Any, depth: int = 12) -> Any:
    """uvicorn's per-request cycle behind `send`, or None.

    Either `send` is the cycle's bound method (the simulator is the server's app), or middleware
    of an app the simulator is mounted in wrapped it in closures that hold it; those are searched
    breadth-first, a few levels deep.
    """
    frontier, seen = [send], set()
    for _ in range(depth):
        following = []
        for candidate in frontier:
            owner = getattr(candidate, "__self__", None)
            # Duck-typed: under uvloop the transport is not an asyncio.Transport subclass.
            transport = getattr(owner, "transport", None)
            if callable(getattr(transport, "abort", None)) and hasattr(owner, "response_started"):
                return owner
            for cell in getattr(candidate, "__closure__", None) or ():
                try:
                    value = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if callable(value) and id(value) not in seen:
                    seen.add(id(value))
                    following.append(value)
        frontier = following
    return None


async def drop_connection(server_send: Send, receive: Receive) -> None:
    cycle = _server_cycle(server_send)
    if cycle is None:
        raise DroppedConnection()
    # Read the whole request first: closing a socket with request bytes still unread (a body that
    # arrives late on a busy machine) makes the kernel answer with a reset, not a clean close.
    while (await receive()).get("more_body", False):
        pass
    cycle.transport.abort()
    # Let the server notice the lost connection, so it neither writes its own 500 nor logs one.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            break
        await anyio.sleep(0)


class Gateway:
    def __init__(self, sim: Simulator, routes: ASGIApp) -> None:
        self.sim = sim
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope).startswith(ADMIN_PREFIX):
            await self.routes(scope, receive, send)
            return
        sim = self.sim
        path = route_path(scope)
        endpoint = match_endpoint(scope["method"], path)
        started, timer = sim.clock(), time.perf_counter()
        status: list[int] = []

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        outcome = "error"
        try:
            if endpoint is None:
                await self.routes(scope, receive, recording_send)
                outcome = "unknown path"
            else:
                outcome = await self._call(endpoint, scope, receive, recording_send, send)
        except DroppedConnection:
            outcome = "fault:drop"
            raise
        finally:  # logged even when the call raised
            took = time.perf_counter() - timer  # real time: latency faults are real sleeps
            self._log(scope, path, endpoint, status[0] if status else None, outcome, started, took)

    def _log(
        self,
        scope: Scope,
        path: str,
        endpoint: Endpoint | None,
        status: int | None,
        outcome: str,
        started: float,
        took: float,
    ) -> None:
        sim = self.sim
        with sim.lock:
            if endpoint is not None and status is not None:
                sim.counters.of(endpoint.name).by_status[str(status)] += 1
            sim.requests.add(
                LoggedRequest(
                    time=started,
                    method=scope["method"],
                    path=path,
                    query=redact_query(scope.get("query_string", b"").decode("latin-1")),
                    endpoint=endpoint.name if endpoint else None,
                    status=status,
                    outcome=outcome,
                    duration_ms=took * 1000,
                )
            )

    async def _call(
        self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, server_send: Send
    ) -> str:
        """Budget, faults, access key, routes; returns the outcome for the request log."""
        sim = self.sim
        with sim.lock:
            now = sim.clock()
            counts = sim.counters.of(endpoint.name)
            counts.calls += 1
            limiter = sim.limiter_for(endpoint.kind)
            admission = limiter.admit(now)
            if not admission.allowed:
                counts.throttled += 1
            else:
                sim.audit.admitted(now, limiter)
                fault = sim.faults.draw(endpoint.kind, endpoint.name)
                if fault.action is not None:
                    counts.faults[fault.action] += 1
        if not admission.allowed:
            retry = admission.retry_after if sim.config.retry_after_header else None
            await _answer(send, envelope.throttled(retry))
            return "throttled"
        if fault.latency:
            await anyio.sleep(fault.latency)
        if fault.action is not None:
            await self._fault(endpoint, fault, scope, receive, send, server_send)
            return f"fault:{fault.action}"
        return "handled" if await self._authenticated(endpoint, scope, receive, send) else "unauthorized"

    async def _fault(
        self,
        endpoint: Endpoint,
        fault: FaultDecision,
        scope: Scope,
        receive: Receive,
        send: Send,
        server_send: Send,
    ) -> None:
        if fault.action == "drop":
            await drop_connection(server_send, receive)
        elif fault.action == "timeout" and fault.timeout_applies:
            await self._late(endpoint, fault.hang_seconds, scope, receive, send)
        elif fault.action == "timeout":
            await anyio.sleep(fault.hang_seconds)
            await _answer(send, envelope.internal_error(504))
        elif fault.action == "throttle":
            retry = None
            if self.sim.config.retry_after_header:
                window = self.sim.limiter_for(endpoint.kind).windows[0]
                retry = max(1, math.ceil(window.seconds_to_end(self.sim.clock())))
            await _answer(send, envelope.throttled(retry))
        elif fault.action == "server_error":
            await _answer(send, envelope.internal_error(fault.status))
        elif fault.action == "status":
            await _answer(send, envelope.injected(fault.status))
        else:  # error_rate
            await _answer(send, envelope.internal_error(500))

    async def _late(
        self, endpoint: Endpoint, hang: float, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The call is carried out now; its answer leaves only after `hang` seconds."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self._authenticated(endpoint, scope, receive, hold)
        await anyio.sleep(hang)
        for message in held:
            await send(message)

    async def _authenticated(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> bool:
        """The routes' answer if the access key is right, else 401; False when refused."""
        # Events authenticate by sharedSecret + tenantId in the route; an access key is optional.
        if endpoint.kind != "events":
            key = _header(scope, b"accesskey")
            expected = self.sim.config.access_key.encode()
            if key is None or not hmac.compare_digest(key, expected):
                await _answer(send, envelope.unauthorized(self.sim.config.unauthorized_status))
                return False
        await self.routes(scope, receive, send)
        return True
