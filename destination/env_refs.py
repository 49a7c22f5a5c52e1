"""`{env: VAR}` in a destinations file: replaced by the variable's value where a secret is given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destination.errors import ConfigError

UNSET_PLACEHOLDER = "unset-environment-variable"


def resolve_env_refs(
    node: Any, environ: Mapping[str, str], where: str = "", unset: list[tuple[str, str]] | None = None
) -> Any:
    """Replace every `{env: VAR}` with the variable's value; a missing variable is an error, or,
    given `unset`, recorded there as (setting, VAR) and replaced by a placeholder so that the
    rest can still be checked (validate-config reports everything at once)."""
    if isinstance(node, dict):
        if set(node) == {"env"} and isinstance(node["env"], str):
            var = node["env"]
            if var in environ:
                return environ[var]
            if unset is None:
                raise ConfigError(f"{where or 'setting'}: environment variable {var} is not set")
            unset.append((where or "setting", var))
            return UNSET_PLACEHOLDER
        return {
            k: resolve_env_refs(v, environ, f"{where}.{k}" if where else k, unset) for k, v in node.items()
        }
    if isinstance(node, list):
        return [resolve_env_refs(v, environ, f"{where}[{i}]", unset) for i, v in enumerate(node)]
    return node
