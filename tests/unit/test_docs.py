"""The docs stay true: the README's two commands, every `orch` command they name, links."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from orchestrator.cli.app import orch

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "CLAUDE.md",
    ROOT / "AGENTS.md",
    *sorted((ROOT / "docs").rglob("*.md")),
]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def test_readme_opens_with_the_two_set_up_commands_drift() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = fenced_blocks(text)
    first, second = blocks[0], blocks[1]
    assert first[0] == second[0] == "bash"
    assert first[1].count("\n") == 1 and second[1].count("\n") == 1  # one line each
    assert first[1].strip().endswith("orch demo")
    assert "pytest" in second[1] and ".[test]" in second[1]
    assert text.index("```bash") < text.index("## ")  # nothing comes before them


def _command_paths() -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()

    def walk(command: click.Command, prefix: tuple[str, ...]) -> None:
        paths.add(prefix)
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*prefix, name))

    walk(orch, ())
    return paths


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_orch_command_the_docs_name_exists_drift(doc: Path) -> None:
    known = _command_paths()
    groups = {
        path for path in known if any(len(p) > len(path) and p[: len(path)] == path for p in known)
    }
    for match in re.finditer(r"\borch ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", doc.read_text()):
        words = tuple(match.group(1).split())
        assert (words[0],) in known, f"{doc.name}: `orch {' '.join(words)}` is not a command"
        if (words[0],) in groups and len(words) > 1:
            assert words in known, f"{doc.name}: `orch {' '.join(words)}` is not a command"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_drift(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_agent_docs_carry_the_test_command_drift() -> None:
    for name in ("CLAUDE.md", "AGENTS.md"):
        text = (ROOT / name).read_text()
        assert ".venv/bin/python -m pytest -q" in text or "python -m pytest" in text


def test_changelog_has_an_unreleased_section_drift() -> None:
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()
