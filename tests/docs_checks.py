"""The docs' drift checks, as functions of their inputs (a doc's text, the package, the CLI).

tests/unit/test_docs.py runs each on the real docs and code, and on a mutated copy, to show
that each check fails when the doc or the code changes alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "orchestrator"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The one test command: the README's second block ends with it, and the agents' docs carry it.
TEST_COMMAND = ".venv/bin/python -m pytest -q -n auto"
FOLDER_TABLE = "## The folders and what each owns"
ENV_LINE = re.compile(r"^(ORCH_[A-Z0-9_]+)=(.*)$")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Each fenced block's language and body."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def readme_setup_problems(text: str) -> list[str]:
    """The README opens with two one-line bash blocks: install-and-demo, then the tests."""
    blocks = fenced_blocks(text)
    if len(blocks) < 2:
        return ["the README has fewer than two fenced blocks"]
    (first_lang, first), (second_lang, second) = blocks[0], blocks[1]
    problems = []
    if not first_lang == second_lang == "bash":
        problems.append("the first two blocks are not both bash")
    if first.count("\n") != 1 or second.count("\n") != 1:
        problems.append("the first two blocks are not one line each")
    if not first.strip().endswith("orch demo"):
        problems.append("the first block does not end with orch demo")
    if ".[test]" not in second or not second.strip().endswith(TEST_COMMAND):
        problems.append(f"the second block does not install .[test] and run {TEST_COMMAND}")
    if "```bash" not in text or "## " in text[: text.index("```bash")]:
        problems.append("a section comes before the two commands")
    return problems


def command_paths(root: click.Command) -> set[tuple[str, ...]]:
    """Every command path of a Click tree: (), ("task",), ("task", "add"), ..."""
    paths: set[tuple[str, ...]] = set()

    def walk(command: click.Command, prefix: tuple[str, ...]) -> None:
        paths.add(prefix)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*prefix, name))

    walk(root, ())
    return paths


def unknown_command_problems(text: str, known: set[tuple[str, ...]]) -> list[str]:
    """Every `orch WORD [WORD]` a doc names is a command (or a group and its command)."""
    groups = {p for p in known if any(len(q) > len(p) and q[: len(p)] == p for q in known)}
    problems = []
    for match in re.finditer(r"\borch ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", text):
        words = tuple(match.group(1).split())
        if (words[0],) not in known or (
            (words[0],) in groups and len(words) > 1 and words not in known
        ):
            problems.append(f"`orch {' '.join(words)}` is not a command")
    return problems


def broken_link_problems(text: str, folder: Path) -> list[str]:
    """Every relative link resolves from the doc's folder."""
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    return [f"links to missing {target}" for target in targets if not (folder / target).exists()]


def commands_in(text: str) -> set[str]:
    """What a doc gives as commands: inline code spans, and the lines of bash blocks."""
    spans = set(re.findall(r"`([^`\n]+)`", text))
    for lang, body in fenced_blocks(text):
        if lang == "bash":
            spans |= {line.split("  #")[0].strip() for line in body.splitlines()}
    return spans


def missing_test_command(text: str) -> list[str]:
    """An agents' doc gives the exact test command, as a command of its own."""
    return [] if TEST_COMMAND in commands_in(text) else [f"does not give `{TEST_COMMAND}`"]


def changelog_problems(text: str) -> list[str]:
    """The changelog has an Unreleased section for the next change."""
    return [] if "## [Unreleased]" in text else ["no ## [Unreleased] section"]


def package_parts(package: Path) -> set[str]:
    """The package's folders (as `name/`) and top-level modules (as `name.py`)."""
    folders = {f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.name for p in package.glob("*.py") if not p.name.startswith("__")}
    return folders | modules


def folder_table(text: str) -> set[str]:
    """The folders and modules the overview's table names in its first column."""
    section = text[text.index(FOLDER_TABLE) :].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def folder_table_problems(text: str, package: Path) -> list[str]:
    """The overview's table has a row for every folder and module of the package, and no
    row for one that does not exist."""
    if FOLDER_TABLE not in text:
        return [f"no '{FOLDER_TABLE}' section"]
    named, real = folder_table(text), package_parts(package)
    return [f"{name} has no row in the folder table" for name in sorted(real - named)] + [
        f"the folder table names {name}, which does not exist" for name in sorted(named - real)
    ]


def env_example_entries(text: str) -> dict[str, tuple[str, str]]:
    """Each key of .env.example: its value and the line just above it."""
    lines = text.splitlines()
    entries = {}
    for number, line in enumerate(lines):
        match = ENV_LINE.match(line)
        if match:
            entries[match.group(1)] = (match.group(2), lines[number - 1] if number else "")
    return entries


def env_example_problems(text: str, keys: set[str]) -> list[str]:
    """.env.example has exactly the settings' keys, each with a comment of its own just above
    it (a line of a section heading, `# --- ... ---`, is not one)."""
    entries = env_example_entries(text)
    problems = [f"{key} is a setting .env.example lacks" for key in sorted(keys - set(entries))]
    problems += [f"{key} is not a setting" for key in sorted(set(entries) - keys)]
    for key, (_, above) in entries.items():
        heading = above.startswith("# ---") or above.rstrip().endswith("---")
        comment = above.startswith("#") and not heading
        if not comment or not above.lstrip("# ").strip():
            problems.append(f"{key} has no comment of its own just above it")
    return problems


def env_example_default_problems(
    text: str, load: Callable[[Mapping[str, str]], Settings], defaults: Settings
) -> list[str]:
    """Each value .env.example shows, set alone, gives the settings' defaults."""
    return [
        f"{key}={value} is not the default"
        for key, (value, _) in env_example_entries(text).items()
        if load({key: value}) != defaults
    ]


def bench_scripts(bench: Path) -> set[str]:
    """The runnable benchmarks: the scripts in bench/ with a main guard (not their helpers)."""
    return {f"bench/{p.name}" for p in bench.glob("*.py") if "__name__ == " in p.read_text("utf-8")}


def benchmark_table_problems(text: str, bench: Path) -> list[str]:
    """docs/benchmarks.md has a row for every benchmark, names none that does not exist, and
    every `--option` it shows is one the script takes."""
    rows = [line for line in text.splitlines() if line.startswith("| `bench/")]
    named: dict[str, str] = {}
    for row in rows:
        command = re.findall(r"`([^`]+)`", row.split("|")[1])[0]
        named[command.split()[0]] = command
    problems = [f"{s} has no row in the table" for s in sorted(bench_scripts(bench) - set(named))]
    for script, command in sorted(named.items()):
        path = bench / Path(script).name
        if not path.is_file():
            problems.append(f"the table names {script}, which does not exist")
            continue
        source = path.read_text("utf-8")
        problems += [
            f"{script} takes no {option}"
            for option in re.findall(r"--[a-z][a-z-]*", command)
            if f'"{option}"' not in source
        ]
    return problems
