"""Fault injection: which failure, if any, the next call in a given endpoint kind suffers."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from destination.simulator.config import EndpointKind, EndpointName, FaultConfig, FaultScope

FaultAction = Literal["drop", "timeout", "throttle", "server_error", "status", "error_rate"]

# Counted faults in the order they win when several are armed for the same call.
_COUNTED: tuple[tuple[FaultAction, str, str], ...] = (
    ("drop", "drop_next", "drop_scope"),
    ("timeout", "timeout_next", "timeout_scope"),
    ("throttle", "throttle_next", "throttle_scope"),
    ("server_error", "server_error_next", "server_error_scope"),
    ("status", "status_next", "status_scope"),
)


@dataclass(frozen=True)
class FaultDecision:
    action: FaultAction | None
    latency: float = 0.0
    status: int = 500  # for server_error, status and error_rate
    hang_seconds: float = 0.0
    timeout_applies: bool = True


def _in_scope(scope: FaultScope, kind: EndpointKind, name: EndpointName) -> bool:
    return scope in ("all", kind, name)


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self._initial = config.model_copy()
        self.config = config.model_copy()
        self._rng = random.Random(config.seed)

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        """Set the given fields (counts are replaced, not added); validated as a whole."""
        merged = FaultConfig.model_validate({**self.config.model_dump(), **changes})
        self.config = merged
        if "seed" in changes:
            self._rng = random.Random(merged.seed)
        return merged

    def clear(self) -> FaultConfig:
        """No faults at all (keeps the seed so a later error rate stays reproducible)."""
        self.config = FaultConfig(seed=self.config.seed)
        return self.config

    def reset(self) -> None:
        """Back to the faults the simulator started with, RNG reseeded."""
        self.config = self._initial.model_copy()
        self._rng = random.Random(self._initial.seed)

    def draw(self, kind: EndpointKind, name: EndpointName) -> FaultDecision:
        """The fault for the next call to endpoint `name` (of kind `kind`), consuming a count."""
        cfg = self.config
        latency = cfg.latency_seconds if _in_scope(cfg.latency_scope, kind, name) else 0.0
        for action, count_field, scope_field in _COUNTED:
            if getattr(cfg, count_field) > 0 and _in_scope(getattr(cfg, scope_field), kind, name):
                setattr(cfg, count_field, getattr(cfg, count_field) - 1)
                return FaultDecision(
                    action,
                    latency,
                    status=cfg.status if action == "status" else cfg.server_error_status,
                    hang_seconds=cfg.hang_seconds,
                    timeout_applies=cfg.timeout_applies,
                )
        if (
            cfg.error_rate > 0
            and _in_scope(cfg.error_rate_scope, kind, name)
            and self._rng.random() < cfg.error_rate
        ):
            return FaultDecision("error_rate", latency)
        return FaultDecision(None, latency)
