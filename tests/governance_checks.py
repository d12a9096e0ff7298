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


def markdown_table(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the doc's table whose first header cell is `first_header`, by header."""
    lines = text.splitlines()
    for at, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_header:
            rows = []
            for row in lines[at + 2 :]:
                if not row.startswith("|"):
                    break
                values = [c.strip() for c in row.strip().strip("|").split("|")]
                rows.append(dict(zip(cells, values, strict=True)))
            return rows
    raise AssertionError(f"no table whose first column is {first_header!r}")


def _shown(value: object, fallback_roles: Iterable[str] = ()) -> str:
    """A registry value as the readable table shows it (a fallback role: "the LLM tester")."""
    if value is None:
        return "-"
    text = str(value)
    if text.startswith("ORCH_"):
        return f"`{text}`"
    return f"the LLM {text}" if text in fallback_roles else text


def call_site_table_problems(
    doc: str, registry: Iterable[Mapping[str, Any]], roles: Iterable[str]
) -> list[str]:
    """The doc's readable table says what the registry says, row for row."""
    columns = {
        "what": "name",
        "stage": "stage",
        "role": "role",
        "producer": "producer",
        "state": "state",
        "kill-switch": "kill_switch",
        "fallback": "fallback",
    }
    table = {row["id"]: row for row in markdown_table(doc, "id")}
    problems = []
    for site in registry:
        row = table.pop(site["id"], None)
        if row is None:
            problems.append(f"{site['id']}: not in the readable table")
            continue
        for column, key in columns.items():
            shown = _shown(site[key], set(roles) if column == "fallback" else ())
            if row[column] != shown:
                problems.append(f"{site['id']}: the table's {column} is {row[column]!r}")
    return problems + [f"{i}: in the readable table, not in the registry" for i in table]


# A call site's roadmap status, from what the code has: a runner that took its stage over
# (done), an aid off the control path (hybrid), a candidate (next), or judgement (stays).
def roadmap_status(site: Mapping[str, Any], runner_stages: set[str]) -> str:
    """The status the roadmap must give `site`."""
    if site["producer"] == "hybrid":
        return "done" if site["stage"] in runner_stages else "hybrid"
    return "stays" if site["replaceability"] >= 5 else "next"


def roadmap_table_problems(
    doc: str, registry: Iterable[Mapping[str, Any]], runner_stages: set[str]
) -> list[str]:
    """The roadmap's status agrees with the code, and its readable table with its block."""
    ranked = {row["id"]: row for row in machine_block(doc, "roadmap")}
    table = {row["id"]: row for row in markdown_table(doc, "rank")}
    problems = []
    for site in registry:
        row, shown = ranked.get(site["id"]), table.get(site["id"])
        if row is None or shown is None:
            problems.append(f"{site['id']}: missing from the roadmap's block or table")
            continue
        status = roadmap_status(site, runner_stages)
        if row["status"] != status:
            problems.append(f"{site['id']}: status {row['status']!r}, the code says {status!r}")
        wanted = (str(row["rank"]), site["name"], str(site["replaceability"]), row["status"])
        seen = (
            shown["rank"],
            shown["call site"],
            shown["replaceability"].split()[0],
            shown["state"].split()[0],
        )
        if seen != wanted:
            problems.append(f"{site['id']}: the readable table shows {seen}, not {wanted}")
    return problems


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


# The usage policy's rules, each the title of one of its sections.
POLICY_RULES = (
    "off the control path",
    "one transport",
    "kill-switch and a fallback",
    "budgets",
    "secrets never reach an agent",
)


def policy_rule_problems(policy: str) -> list[str]:
    """Every rule of the usage policy is the title of one of its sections."""
    titles = [line.lower() for line in policy.splitlines() if line.startswith("## ")]
    return [
        f"the usage policy has no section on {rule!r}"
        for rule in POLICY_RULES
        if not any(rule in title for title in titles)
    ]


def fallback_prompt_problems(prompts: Mapping[str, str]) -> list[str]:
    """The tester's and deployer's prompts say that their LLM branch is the fallback."""
    return [
        f"the {role} prompt does not say it is the fallback"
        for role in ("tester", "deployer")
        if "LLM branch is now the fallback" not in prompts.get(role, "")
    ]


# os functions that run a shell (banned everywhere), and those that start a program (only
# proc/ may); asyncio's process starters likewise.
OS_SHELLS = {"system", "popen"}
OS_STARTER_PREFIXES = ("exec", "spawn", "posix_spawn", "startfile")
ASYNC_SHELLS = {"create_subprocess_shell", "subprocess_shell"}
ASYNC_STARTERS = {"create_subprocess_exec", "subprocess_exec"}
DYNAMIC_IMPORTS = {"importlib.import_module", "__import__", "importlib.__import__"}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Each name an import binds, mapped to what it stands for (`_o` -> `os`,
    `_s` -> `os.system`), so that a renamed import cannot hide a call."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def _qualified(node: ast.AST, aliases: Mapping[str, str]) -> str | None:
    """The dotted name an expression stands for (`_o.system` -> `os.system`), if it has one."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _qualified(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def _imports(tree: ast.AST) -> Iterable[str]:
    """Every module imported, and every name imported from one (`from os import system` ->
    `os.system`, `from google import genai` -> `google.genai`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _within(name: str, modules: set[str]) -> bool:
    """True when `name` is one of `modules` or inside one."""
    return any(name == module or name.startswith(f"{module}.") for module in modules)


def _process_starter(name: str, layer: str) -> str | None:
    """Why calling or importing `name` (dotted, aliases resolved) is not allowed in `layer`."""
    module, _, function = name.rpartition(".")
    if (module == "os" and function in OS_SHELLS) or function in ASYNC_SHELLS:
        return "nothing runs a shell"
    if layer == "proc":
        return None
    if (module == "os" and function.startswith(OS_STARTER_PREFIXES)) or function in ASYNC_STARTERS:
        return "only proc/ starts processes"
    return None


def _names_agent_cli(text: str) -> bool:
    """True when `text` is a command line of an agent CLI: its first word is `claude` or
    `codex` (or a path to one) and arguments follow."""
    words = text.split()
    return len(words) > 1 and words[0].rsplit("/", 1)[-1] in AGENT_CLIS


def _agent_cli(node: ast.AST) -> str | None:
    """The agent CLI a string constant is exactly (`"claude"`, `"/usr/bin/codex"`), if any."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        name = node.value.rsplit("/", 1)[-1]
        return name if name in AGENT_CLIS else None
    return None


def _cli_problems(tree: ast.AST, where: str) -> Iterable[str]:
    """Strings that name an agent CLI as a command, outside the transport: the first item of
    an argv list, the first argument of a call, or a command line in one string."""
    # Literal["claude", "codex", ...] names a setting's values, and docstrings are prose.
    exempt = {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            exempt.add(id(node.value))
        if isinstance(node, ast.JoinedStr):
            exempt.update(id(part) for part in node.values)
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.List | ast.Tuple) and node.elts and _agent_cli(node.elts[0]):
            yield f"{where}:{node.lineno} builds a {_agent_cli(node.elts[0])} command line"
        elif isinstance(node, ast.Call) and node.args and _agent_cli(node.args[0]):
            yield f"{where}:{node.lineno} names the {_agent_cli(node.args[0])} command"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _names_agent_cli(node.value):
                yield f"{where}:{node.lineno} names a {node.value.split()[0]} command line"
        elif isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            # f"claude -p {x}" or f"claude {x}": the CLI, then a space, then anything.
            if isinstance(first, ast.Constant) and _names_agent_cli(f"{first.value}{{}}"):
                yield f"{where}:{node.lineno} names a {first.value.split()[0]} command line"


def _call_problems(node: ast.Call, aliases: Mapping[str, str], layer: str) -> Iterable[str]:
    """What one call does that only proc/ or transport/ may do, or nothing may."""
    for keyword in node.keywords:
        if keyword.arg == "shell" and not (
            isinstance(keyword.value, ast.Constant) and keyword.value.value is False
        ):
            yield "passes shell="
    name = _qualified(node.func, aliases)
    if name is None:
        return
    if name == "getattr" and len(node.args) >= 2:
        base, attr = _qualified(node.args[0], aliases), node.args[1]
        if base and isinstance(attr, ast.Constant) and isinstance(attr.value, str):
            name = f"{base}.{attr.value}"
    why = _process_starter(name, layer)
    if why:
        yield f"calls {name}: {why}"
    if name in DYNAMIC_IMPORTS:
        target = node.args[0] if node.args else None
        if not (isinstance(target, ast.Constant) and isinstance(target.value, str)):
            yield "imports a module by a computed name, which this scan cannot check"
        else:
            yield from _import_problems(target.value, layer)


def _import_problems(module: str, layer: str) -> Iterable[str]:
    if layer != "transport" and _within(module, LLM_SDKS):
        yield f"imports the LLM SDK {module}"
    if layer != "proc" and _within(module, PROCESS_MODULES):
        yield f"imports {module}: only proc/ starts processes"
    why = _process_starter(module, layer)
    if why:
        yield f"imports {module}: {why}"


def single_transport_problems(package: Path) -> list[str]:
    """An AST scan of the package: only transport/ starts agents or imports an LLM SDK, only
    proc/ imports process modules or starts programs, and nothing runs a shell. Imports are
    followed through their aliases, and dynamic imports of a named module are checked too."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        where = path.relative_to(package).as_posix()
        layer = where.split("/")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        aliases = _aliases(tree)
        for module in sorted(set(_imports(tree))):
            problems += [f"{where} {why}" for why in _import_problems(module, layer)]
        if layer != "transport":
            problems += list(_cli_problems(tree, where))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                problems += [
                    f"{where}:{node.lineno} {why}" for why in _call_problems(node, aliases, layer)
                ]
    return problems
