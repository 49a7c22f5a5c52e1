"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from destination import __version__
from destination.runtime import RuntimeDep

router = APIRouter(tags=["Health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/ready", summary="Readiness: settings loaded, delivery running")
async def ready(runtime: RuntimeDep) -> dict[str, Any]:
    return {
        "status": "ready",
        "sandbox": runtime.sandbox,
        "destinations": sorted(runtime.destinations),
    }
