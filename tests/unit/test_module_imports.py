"""How the package's modules import each other, read from their source (imports under
TYPE_CHECKING count too): no circle, and the pure rooms (gainsight/, mapping/) import no web
framework, so the transformer's logic is not tied to its routes (issue 20)."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Collection
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from destination import runtime
from destination.runtime import Runtime

PACKAGE = Path(__file__).resolve().parents[2] / "destination"
WEB = ("fastapi", "starlette")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: Collection[str] = ()) -> set[str]:
    """The modules `path` imports: `from a import b` imports the module a.b when there is one
    (among `modules`), else a."""
    names: set[str] = set()
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                name = f"{module}.{alias.name}"
                names.add(name if name in modules else module)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported(path, modules) & modules.keys() - {name} for name, path in modules.items()}


def test_no_module_imports_itself_through_others() -> None:
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import circle: {' -> '.join(exc.args[1])}") from None


def test_the_transformer_mapping_and_planning_import_no_web_framework() -> None:
    # The class Runtime names as its transformer, as the running service imports it.
    transformer = inspect.getsourcefile(vars(runtime)[Runtime.__annotations__["transformer"]])
    assert transformer is not None and Path(transformer).parent == PACKAGE / "gainsight"
    for room in ("gainsight", "mapping"):
        for path in (PACKAGE / room).glob("*.py"):
            web = {name for name in imported(path) if name.split(".")[0] in WEB}
            assert not web, f"{path.relative_to(PACKAGE)} imports {sorted(web)}"
