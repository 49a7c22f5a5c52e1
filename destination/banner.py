"""What `serve` prints once the port accepts connections: where it listens, where Gainsight calls
go when GSD_GAINSIGHT_BASE_URL redirects them, and where the status page is (or how to turn it on)."""

from __future__ import annotations

from typing import Any

from destination.sandbox import sandbox_banner
from destination.settings import Settings


def banner(application: Any, host: str, port: int, settings: Settings) -> str:
    base = f"http://{host}:{port}"
    redirected = settings.gainsight_base_url
    lines = [
        sandbox_banner(application, host, port, redirected) or f"gainsight-destination: Listening on {base}"
    ]
    if redirected is not None:
        lines.append(
            f"Gainsight calls are redirected to {redirected} "
            "(GSD_GAINSIGHT_BASE_URL) instead of each destination's domain"
        )
    if settings.admin_token is not None:
        lines.append(f"status page: {base}/status (any user name, GSD_ADMIN_TOKEN as password)")
    else:
        lines.append("status page: off (set GSD_ADMIN_TOKEN to turn on /status and the admin routes)")
    return "\n".join(lines)
