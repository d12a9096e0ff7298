"""The order of the layers: a package may import its own layer and the layers below, never
one above. Self-hosting sits above jobs and runners (it builds on them; they are handed its
one step from the scheduler), so an upward import cannot come back unnoticed."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "orchestrator"

# Lowest first. The edges (people's entry points and what only they use) are the top layer.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(names.split())
    for names in (
        "errors self_deploy governance settings redact pipeline prompts",
        "store documents story",
        "proc workspace transport joblogs",
        "runners",
        "jobs",
        "selfhost",
        "scheduler alerting",
        "intake registry control overview doctor repo_doctor demo api cli __main__",
    )
)


def layer_of(top: str) -> int:
    """The layer of a top-level module or package of `orchestrator`."""
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"orchestrator.{top} is in no layer: give it one in LAYERS")


def imports(path: Path) -> Iterable[str]:
    """The top-level `orchestrator` modules a file imports (at any depth of the file)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "orchestrator" and len(parts) > 1:
                yield parts[1]


def layer_problems(edges: Iterable[tuple[str, str]]) -> list[str]:
    """Each import (from, to) that goes up a layer."""
    return [
        f"orchestrator.{source} imports orchestrator.{target}, a layer above it"
        for source, target in edges
        if layer_of(target) > layer_of(source)
    ]


def _edges() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if top == "__init__":
            continue
        found.extend((top, target) for target in imports(path) if target != top)
    return found


def test_no_package_imports_a_layer_above_its_own():
    assert layer_problems(_edges()) == []


def test_every_top_level_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*")}
    for top in tops - {"__init__", "__pycache__", "py.typed"}:
        layer_of(top)


def test_an_upward_import_is_caught():
    assert layer_problems([("jobs", "selfhost"), ("runners", "selfhost")]) == [
        "orchestrator.jobs imports orchestrator.selfhost, a layer above it",
        "orchestrator.runners imports orchestrator.selfhost, a layer above it",
    ]
    assert layer_problems([("selfhost", "jobs"), ("cli", "api")]) == []
