"""The folders are the architecture: these checks keep each layer to its own job."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "orchestrator"
MODULES = sorted(PACKAGE.rglob("*.py"))
# The size limit holds for tests and benchmarks too: a long test module hides what it pins.
SIZED = sorted([*MODULES, *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _in(path: Path, *folders: str) -> bool:
    return _relative(path).split("/")[0] in folders


def _from_root(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", SIZED, ids=_from_root)
def test_no_module_is_over_400_lines(path: Path) -> None:
    count = len(path.read_text().splitlines())
    assert count <= 400, f"{_from_root(path)} has {count} lines"


def test_no_test_gives_a_process_a_fixed_marker() -> None:
    # The leftover sweep kills every process whose marker it finds: two runs of the suite on
    # one machine that shared a marker would kill each other's processes (tests.helpers).
    fixed = [
        _from_root(path)
        for path in (ROOT / "tests").rglob("*.py")
        if re.search(r"""\bmarker=(["'])""", path.read_text())
    ]
    assert fixed == [], "use tests.helpers.unique_marker()"


def test_the_size_limit_covers_the_package_the_tests_and_the_benchmarks() -> None:
    tops = {_from_root(path).split("/")[0] for path in SIZED}
    assert tops == {"src", "tests", "bench"}
    assert Path(__file__).resolve() in SIZED


PURE_STDLIB = {
    "__future__",
    "collections",
    "collections.abc",
    "dataclasses",
    "enum",
    "json",
    "re",
    "types",
    "typing",
    "math",
    "itertools",
    "functools",
    "tomllib",  # parses text it is handed (orch.toml); reads no file
}


@pytest.mark.parametrize("path", [p for p in MODULES if _in(p, "pipeline")], ids=_relative)
def test_pipeline_model_imports_nothing_with_side_effects(path: Path) -> None:
    for module in _imports(path):
        allowed = module in PURE_STDLIB or module.startswith("orchestrator.pipeline")
        assert allowed or module == "orchestrator.errors", f"{_relative(path)} imports {module}"


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_only_the_process_layer_starts_subprocesses(path: Path) -> None:
    if _in(path, "proc"):
        return
    for module in _imports(path):
        assert module.split(".")[0] not in {"subprocess", "pty", "multiprocessing"}, module
    source = path.read_text()
    for call in ("os.system", "os.popen", "os.exec", "os.spawn", "os.fork", "create_subprocess"):
        assert call not in source, f"{_relative(path)} uses {call}"


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_no_call_uses_a_shell(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                is_true = isinstance(keyword.value, ast.Constant) and keyword.value.value is True
                assert not (keyword.arg == "shell" and is_true), f"shell=True in {_relative(path)}"


@pytest.mark.parametrize("path", MODULES, ids=_relative)
def test_only_the_store_talks_to_the_database(path: Path) -> None:
    if _in(path, "store"):
        return
    for module in _imports(path):
        assert module.split(".")[0] not in {"sqlalchemy", "alembic", "psycopg", "sqlite3"}, (
            f"{_relative(path)} imports {module}"
        )
