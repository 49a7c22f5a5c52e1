"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from destination import __version__
from destination.api.responses import JsonResponse
from destination.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["Health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


_PROBE_KEY = "gsd:ready-probe"
_RECHECK_AFTER = 10.0  # seconds: a small probe commit can pass on a disk an ingest just filled
_PROBE_WINDOW = ("probe", 0.0, 2**31 - 1)  # never full (and fits an int4); pruned with stale windows
ANSWER_WITHIN = 4.5  # seconds: /ready answers within 5 s even while the store hangs


def _reason(exc: Exception) -> str:
    """What a store error says (its cause), never a bare class name."""
    return str(exc) or type(exc).__name__


async def _store_problems(runtime: Runtime) -> tuple[dict[str, int], list[str]]:
    problems = []
    try:
        queue: dict[str, int] = {str(k): v for k, v in (await runtime.store.counts()).items()}
    except Exception as exc:
        return {}, [f"store: {_reason(exc)}"]  # not answering: no commit probe on top
    store = runtime.store_health
    if store.problem is not None and store.failing_for() < _RECHECK_AFTER:
        problems.append(f"store cannot commit: {store.problem}")
    elif store.problem is not None:
        # The last commit failed a while ago: see whether a small one succeeds now (a replica taken
        # out of a load balancer receives no ingest to find out by itself; no restart needed).
        try:
            await runtime.store.take_budget(_PROBE_KEY, [_PROBE_WINDOW])
            runtime.store_committed()
        except Exception as exc:
            runtime.store_failed(exc)
            problems.append(f"store cannot commit: {store.problem}")
    return queue, problems


@router.get(
    "/ready",
    summary="Readiness: settings loaded, store answering and committing, delivery running",
    responses={503: {"description": "the store does not answer or commit, or delivery has stopped"}},
)
async def ready(runtime: RuntimeDep) -> JsonResponse:
    try:
        queue, problems = await asyncio.wait_for(_store_problems(runtime), ANSWER_WITHIN)
    except TimeoutError:
        problem = runtime.store_health.problem
        known = f" (last failure: {problem})" if problem else ""
        queue, problems = {}, [f"store: no answer within {ANSWER_WITHIN:g} s{known}"]
    if not runtime.delivering:
        problems.append("delivery loop is not running")
    body = {
        "status": "not ready" if problems else "ready",
        "problems": problems,
        "sandbox": runtime.sandbox,
        # How many, never which: destination ids are for authenticated callers.
        "destinations": len(runtime.destinations),
        "queue": queue,
    }
    return JsonResponse(body, 503 if problems else 200)
