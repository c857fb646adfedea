"""The house rules of the layout: imports run downwards only, and no module cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("analytics", "agents", "tables", "web")
# Which top-level packages each package may import (besides itself).
ALLOWED = {
    "analytics": set(),
    "tables": {"analytics"},
    "web": {"analytics"},
    "agents": {"analytics", "tables", "web"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every project module ``path`` imports, at any depth of the file (functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for pkg in PACKAGES for path in (ROOT / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # "from analytics.ops import retention" names a module; "from x import func" not.
        edges[name] = {target for target in imports_of(path) if target in modules} - {name}
    return edges


def test_imports_run_downwards_only() -> None:
    wrong = [
        f"{source} imports {target}"
        for source, targets in graph().items()
        for target in targets
        if target.split(".")[0] != source.split(".")[0]
        and target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    ]
    assert wrong == []


def test_no_module_imports_itself_through_others() -> None:
    edges = graph()
    # For each edge X -> Y: can Y reach X again through the modules it imports?
    cycles = []
    for source, targets in edges.items():
        for target in targets:
            seen, todo = set(), [target]
            while todo:
                current = todo.pop()
                if current == source:
                    cycles.append(f"{source} -> {target} -> … -> {source}")
                    break
                if current not in seen:
                    seen.add(current)
                    todo.extend(edges.get(current, ()))
    assert cycles == []
