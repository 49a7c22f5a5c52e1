"""What `validate-config` reports about `config.usage` (DESIGN §3.7) beyond what loading checks."""

from __future__ import annotations

from destination.config import DestinationConfig
from destination.config_sections import CUSTOM_SUFFIX, EVERY_TRACK


def usage_problems(config: DestinationConfig) -> list[str]:
    usage = config.usage
    if usage is None:
        return []
    problems = []
    fields = usage.fields.model_dump()
    for role, name in fields.items():
        if not name.endswith(CUSTOM_SUFFIX):
            problems.append(
                f"usage.fields.{role}: {name!r} is not a custom field of {usage.object} (…{CUSTOM_SUFFIX})"
            )
    if len(set(fields.values())) < len(fields):
        problems.append("usage.fields: company, date, metric and count must be four different fields")
    if config.access_key is None:
        problems.append("usage counts need accessKey, which is missing")
    if usage.publish and usage.events != (EVERY_TRACK,):
        unmapped = [e for e in usage.events if e not in config.event_names or e not in config.event_versions]
        problems.extend(
            f"usage.publish: {e!r} is counted and published, so it needs eventNameMap and eventVersionMap "
            "entries (without them it is filtered, and not counted either)"
            for e in unmapped
        )
    return problems
