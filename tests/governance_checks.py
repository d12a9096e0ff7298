"""The anti-drift and single-transport checks, as functions of their inputs.

Tests run them on the real docs and code, and on mutated copies, to show that each check
fails when the doc or the code changes alone.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)
SETTING_KEY = re.compile(r"\bORCH_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
AGENT_CLIS = {"claude", "codex"}
LLM_SDKS = {
    "anthropic",
    "openai",
    "claude_agent_sdk",
    "claude_code_sdk",
    "litellm",
    "langchain",
    "langchain_core",
    "langchain_openai",
    "mistralai",
    "cohere",
    "ollama",
    "google.generativeai",
    "google.genai",
}
PROCESS_MODULES = {"subprocess", "pty", "multiprocessing", "asyncio.subprocess"}


def machine_block(text: str, key: str) -> Any:
    """The value of `key` in the doc's JSON blocks."""
    for block in JSON_BLOCK.findall(text):
        document = json.loads(block)
        if key in document:
            return document[key]
    raise AssertionError(f"no JSON block with {key!r}")


def call_site_problems(doc: str, registry: Iterable[Mapping[str, Any]]) -> list[str]:
    """Differences between the doc's call_sites block and the registry."""
    documented = {row["id"]: row for row in machine_block(doc, "call_sites")}
    coded = {row["id"]: dict(row) for row in registry}
    problems = [f"{i}: in the registry, not in the doc" for i in coded.keys() - documented.keys()]
    problems += [f"{i}: in the doc, not in the registry" for i in documented.keys() - coded.keys()]
    for call_id in coded.keys() & documented.keys():
        if coded[call_id] != documented[call_id]:
            problems.append(f"{call_id}: doc {documented[call_id]} != code {coded[call_id]}")
    return problems


def reserved_agent_problems(doc: str, table: Iterable[Mapping[str, Any]]) -> list[str]:
    """Differences between the doc's reserved_agents block and the launcher's table."""
    documented = sorted(machine_block(doc, "reserved_agents"), key=lambda r: r["stage"])
    coded = sorted((dict(r) for r in table), key=lambda r: r["stage"])
    return [] if documented == coded else [f"doc {documented} != code {coded}"]


def roadmap_problems(doc: str, registry: Iterable[Mapping[str, Any]]) -> list[str]:
    """The roadmap ranks every call site, with the registry's replaceability and state."""
    ranked = {row["id"]: row for row in machine_block(doc, "roadmap")}
    problems = []
    for site in registry:
        row = ranked.get(site["id"])
        if row is None:
            problems.append(f"{site['id']} is not ranked")
        elif (row["replaceability"], row["state"]) != (site["replaceability"], site["state"]):
            problems.append(f"{site['id']}: roadmap {row} disagrees with the registry")
    ranks = [row["rank"] for row in sorted(ranked.values(), key=lambda r: r["replaceability"])]
    if ranks != sorted(ranks):
        problems.append("the ranking does not follow replaceability")
    return problems + [
        f"{i} is ranked but not registered" for i in ranked.keys() - {s["id"] for s in registry}
    ]


def setting_key_problems(
    docs: Mapping[str, str], settings: set[str], others: set[str]
) -> list[str]:
    """Every ORCH_* key the docs name is a setting (or a known variable), and every setting
    is named somewhere in the docs."""
    named: dict[str, str] = {}
    for name, text in docs.items():
        for key in SETTING_KEY.findall(text):
            named.setdefault(key, name)
    problems = [
        f"{named[k]} names {k}, which is not a setting" for k in named.keys() - settings - others
    ]
    return problems + [f"setting {k} is documented nowhere" for k in settings - named.keys()]


def fallback_prompt_problems(prompts: Mapping[str, str]) -> list[str]:
    """The tester's and deployer's prompts say that their LLM branch is the fallback."""
    return [
        f"the {role} prompt does not say it is the fallback"
        for role in ("tester", "deployer")
        if "LLM branch is now the fallback" not in prompts.get(role, "")
    ]


def _imports(tree: ast.AST) -> Iterable[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def single_transport_problems(package: Path) -> list[str]:
    """An AST scan of the package: only transport/ starts agents or imports an LLM SDK, only
    proc/ imports process modules, and nothing runs a shell."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        layer = where.split("/")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        # Literal["claude", "codex", ...] names a setting's values, not a command line.
        subscripts = {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
        for module in _imports(tree):
            top = module.split(".")[0]
            if layer != "transport" and (module in LLM_SDKS or top in LLM_SDKS):
                problems.append(f"{where} imports the LLM SDK {module}")
            if layer != "proc" and (module in PROCESS_MODULES or top in PROCESS_MODULES):
                problems.append(f"{where} imports {module}: only proc/ starts processes")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.List | ast.Tuple)
                and node.elts
                and layer != "transport"
                and id(node) not in subscripts
            ):
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value in AGENT_CLIS:
                    problems.append(f"{where}:{node.lineno} builds a {first.value} command line")
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "shell" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        problems.append(f"{where}:{node.lineno} passes shell=")
                func = node.func
                if (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "os"
                    and func.attr in ("system", "popen")
                ):
                    problems.append(f"{where}:{node.lineno} calls os.{func.attr}")
    return problems
