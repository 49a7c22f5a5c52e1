"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from destination import __version__
from destination.api.responses import JsonResponse
from destination.runtime import RuntimeDep

router = APIRouter(tags=["Health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get(
    "/ready",
    summary="Readiness: settings loaded, store answering, delivery running",
    responses={503: {"description": "the store does not answer or delivery has stopped"}},
)
async def ready(runtime: RuntimeDep) -> JsonResponse:
    problems = []
    try:
        queue = await runtime.store.counts()
    except Exception as exc:
        queue = {}
        problems.append(f"store: {type(exc).__name__}")
    if not runtime.delivering:
        problems.append("delivery loop is not running")
    body = {
        "status": "not ready" if problems else "ready",
        "problems": problems,
        "sandbox": runtime.sandbox,
        "destinations": sorted(runtime.destinations),
        "queue": queue,
    }
    return JsonResponse(body, 503 if problems else 200)
