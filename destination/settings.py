"""Service settings (DESIGN §4.3): environment variables prefixed GSD_, or command-line flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_ALLOWED_DOMAINS = ("*.gainsightcloud.com",)


SANDBOX_USAGE_FLUSH_SECONDS = 5.0
"""GSD_USAGE_FLUSH_SECONDS in sandbox mode unless it is set: a count arrives while you watch."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GSD_", extra="ignore")

    destinations: Path | None = None
    host: str | None = None  # None: 127.0.0.1 in sandbox mode, 0.0.0.0 when inbound auth is on
    port: int = Field(8080, ge=0, le=65535)
    store_url: str = "sqlite:///./data/gsd.sqlite3"
    # Connections per process to a PostgreSQL store (ingest and workers share them).
    store_pool_size: int = Field(10, ge=1, le=200)
    rate_limit_per_minute: int = Field(100, ge=1)
    rate_limit_per_day: int = Field(50_000, ge=1)
    # Rate windows: a minute and a UTC day; shorter only for tests and demos.
    rate_minute_seconds: float = Field(60.0, gt=0)
    rate_day_seconds: float = Field(86_400.0, gt=0)
    max_attempts: int = Field(20, ge=1)
    max_age_seconds: float = Field(86_400.0, gt=0)
    gainsight_base_url: str | None = None
    gainsight_timeout_seconds: float = Field(15.0, gt=0)
    # The RudderStack transformer routes take no credentials (rudder-server sends none): off
    # unless asked for, and bounded (DESIGN §4.2).
    transformer_routes: Literal["on", "off"] = "off"
    transformer_max_items: int = Field(1000, ge=1)
    allowed_domains: Annotated[tuple[str, ...], NoDecode] = ()
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # What one event may carry (planning it runs on the event loop): keys of traits,
    # context.traits and properties each, and its size as stored; more is rejected at ingest.
    max_event_fields: int = Field(1000, ge=1)
    max_event_bytes: int = Field(256 * 1024, ge=1024)
    # A request body not received within this many seconds is answered 408 (slow clients).
    body_timeout_seconds: float = Field(30.0, gt=0)
    # Connection limits (destination/connections.py): connections open at once (more get 503),
    # seconds for a request head to arrive (408), a head's size (431), idle keep-alive seconds.
    max_connections: int = Field(4096, ge=1)
    header_timeout_seconds: float = Field(10.0, gt=0)
    max_header_bytes: int = Field(64 * 1024, ge=1024)
    keep_alive_seconds: int = Field(5, ge=1)
    # Origins whose pages may post to the ingest routes (CORS, for browser SDKs); none by default.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # When set, /metrics is served on this port only (and GSD_METRICS_HOST, default 127.0.0.1),
    # not on the service's own address.
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    auth: Literal["on", "off"] | None = None  # None: on, except in sandbox mode
    workers: int = Field(4, ge=1, le=256)
    lease_seconds: float = Field(10.0, gt=0)  # per claim; renewed while a delivery runs
    # How long delivered state is remembered so that unchanged writes are skipped (0 = off).
    unchanged_ttl_seconds: float = Field(86_400.0, ge=0)
    # Timeline's own budget class (DESIGN §3.6), and whether its calls count toward the daily cap.
    timeline_rate_limit_per_minute: int = Field(200, ge=1)
    timeline_counts_toward_day: bool = True
    # How often changed usage counts are written (DESIGN §3.7); also soon after a UTC day closes.
    usage_flush_seconds: float = Field(3600.0, gt=0)
    admin_token: SecretStr | None = None
    # JWTs whose exp lies further ahead than this (or further after their iat) are refused.
    jwt_max_lifetime_seconds: float | None = Field(None, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    # Emails in outcome log lines (the person's, and ids that are email addresses); off: never.
    log_pii: bool = False
    # Shutdown: open requests get 3 s, then deliveries in flight the rest; below docker stop's 10 s.
    drain_seconds: float = Field(8.0, ge=4.0)
    # The cycle collector's young-generation threshold, set by `serve` once started (serving.py,
    # tune_gc); 0 keeps Python's own (700).
    gc_young_threshold: int = Field(100_000, ge=0)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("allowed_domains", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @field_validator(
        "gainsight_base_url",
        "destinations",
        "host",
        "admin_token",
        "metrics_port",
        "jwt_max_lifetime_seconds",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def sandbox(self) -> bool:
        return self.destinations is None

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "on" if self.auth is not None else not self.sandbox

    @property
    def usage_flush_interval(self) -> float:
        if self.sandbox and "usage_flush_seconds" not in self.model_fields_set:
            return SANDBOX_USAGE_FLUSH_SECONDS
        return self.usage_flush_seconds


def default(name: str) -> Any:
    """A setting's default, for the components that take it as an argument: each default is
    written once, in `Settings` above, and read from there everywhere else."""
    return Settings.model_fields[name].default
