"""The docs stay true: the README's two commands, every `orch` command they name, links, the
agents' test command, the overview's folder table and .env.example.

Each drift check runs on the real docs, and on a mutated copy to show it can fail.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from orchestrator.cli.app import orch
from orchestrator.settings import Settings, env_key, load_settings
from tests.docs_checks import (
    PACKAGE,
    ROOT,
    TEST_COMMAND,
    broken_link_problems,
    changelog_problems,
    command_paths,
    env_example_default_problems,
    env_example_problems,
    folder_table_problems,
    missing_test_command,
    readme_setup_problems,
    unknown_command_problems,
)

DOCS = [
    ROOT / "README.md",
    ROOT / "CLAUDE.md",
    ROOT / "AGENTS.md",
    *sorted((ROOT / "docs").rglob("*.md")),
]
README = (ROOT / "README.md").read_text()
OVERVIEW = (ROOT / "docs" / "internals" / "overview.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
SETTING_KEYS = {env_key(name) for name in Settings.model_fields}


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_readme_opens_with_the_two_set_up_commands_drift() -> None:
    assert readme_setup_problems(README) == []


def test_readme_set_up_drift_caught_on_a_mutated_copy() -> None:
    assert readme_setup_problems(README.replace("orch demo\n```", "orch doctor\n```", 1))
    assert readme_setup_problems(README.replace(f"&& {TEST_COMMAND}", "&& pytest", 1))
    assert readme_setup_problems("## Intro\n\n" + README)


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_every_orch_command_the_docs_name_exists_drift(doc: Path) -> None:
    assert unknown_command_problems(doc.read_text(), command_paths(orch)) == []


def test_orch_command_drift_caught_on_a_mutated_copy() -> None:
    known = command_paths(orch)
    assert unknown_command_problems("Run `orch deploy` now.", known)
    assert unknown_command_problems("Then `orch task explode ID`.", known)
    assert unknown_command_problems(README, known - {("doctor",)})


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_relative_links_resolve_drift(doc: Path) -> None:
    assert broken_link_problems(doc.read_text(), doc.parent) == []


def test_relative_links_drift_caught_on_a_mutated_copy() -> None:
    agents = (ROOT / "AGENTS.md").read_text()
    mutated = agents.replace("(CLAUDE.md)", "(CLAUDE-gone.md)")
    assert mutated != agents
    assert broken_link_problems(mutated, ROOT) == ["links to missing CLAUDE-gone.md"]


@pytest.mark.parametrize("name", ["CLAUDE.md", "AGENTS.md"])
def test_agent_docs_carry_the_test_command_drift(name: str) -> None:
    assert missing_test_command((ROOT / name).read_text()) == []


@pytest.mark.parametrize(
    "replacement",
    ["python -m pytest", "pytest -q", ".venv/bin/python -m pytest -q -x tests/unit"],
)
def test_agent_docs_test_command_drift_caught_on_a_mutated_copy(replacement: str) -> None:
    for name in ("CLAUDE.md", "AGENTS.md"):
        text = (ROOT / name).read_text()
        assert missing_test_command(text.replace(TEST_COMMAND, replacement)), name


def test_changelog_has_an_unreleased_section_drift() -> None:
    assert changelog_problems((ROOT / "CHANGELOG.md").read_text()) == []


def test_changelog_drift_caught_on_a_mutated_copy() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert changelog_problems(text.replace("## [Unreleased]", "## [0.2.0]"))


# --- the overview's folder table --------------------------------------------------------------


def test_overview_folder_table_drift_names_every_folder_and_module() -> None:
    assert folder_table_problems(OVERVIEW, PACKAGE) == []


def test_overview_folder_table_drift_caught_when_the_doc_changes_alone() -> None:
    without_api = "\n".join(
        line for line in OVERVIEW.splitlines() if not line.startswith("| `api/`")
    )
    assert folder_table_problems(without_api, PACKAGE) == ["api/ has no row in the folder table"]
    renamed = OVERVIEW.replace("| `self_deploy.py` |", "| `runners/self_deploy.py` |")
    assert "the folder table names runners/self_deploy.py, which does not exist" in (
        folder_table_problems(renamed, PACKAGE)
    )


def test_overview_folder_table_drift_caught_when_the_package_changes_alone(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "orchestrator"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "plugins").mkdir()
    (copy / "plugins" / "__init__.py").write_text('"""A new folder nobody described."""\n')
    (copy / "doctor.py").unlink()
    assert folder_table_problems(OVERVIEW, copy) == [
        "plugins/ has no row in the folder table",
        "the folder table names doctor.py, which does not exist",
    ]


# --- .env.example -------------------------------------------------------------------------------


def test_env_example_drift_every_setting_once_each_with_its_own_comment() -> None:
    assert env_example_problems(ENV_EXAMPLE, SETTING_KEYS) == []


def test_env_example_drift_caught_when_a_key_loses_its_comment() -> None:
    mutated = ENV_EXAMPLE.replace(
        "# TCP port of orch serve (the API and the dashboard).\nORCH_PORT=", "ORCH_PORT="
    )
    assert mutated != ENV_EXAMPLE
    assert env_example_problems(mutated, SETTING_KEYS) == [
        "ORCH_PORT has no comment of its own just above it"
    ]
    heading_only = ENV_EXAMPLE.replace(
        "\n# Folder for the database, task worktrees and artifacts.", ""
    )
    assert env_example_problems(heading_only, SETTING_KEYS) == [
        "ORCH_HOME has no comment of its own just above it"
    ]
    # The second line of a two-line heading is a heading too.
    under_heading = "\n".join(
        line for line in ENV_EXAMPLE.splitlines() if not line.startswith("# On: the deploy-fin")
    )
    assert env_example_problems(under_heading, SETTING_KEYS) == [
        "ORCH_DEPLOY_FINALIZER_ENABLED has no comment of its own just above it"
    ]


def test_env_example_drift_caught_when_either_side_changes_alone() -> None:
    assert env_example_problems(ENV_EXAMPLE, SETTING_KEYS | {"ORCH_NEW_KNOB"}) == [
        "ORCH_NEW_KNOB is a setting .env.example lacks"
    ]
    extra = ENV_EXAMPLE + "# Goes faster.\nORCH_TURBO=1\n"
    assert env_example_problems(extra, SETTING_KEYS) == ["ORCH_TURBO is not a setting"]


def _loader(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Settings, Callable[[Mapping[str, str]], Settings]]:
    monkeypatch.delenv("ORCH_HOME")  # the example shows the real default home

    def load(values: Mapping[str, str]) -> Settings:
        with monkeypatch.context() as patch:
            for key, value in values.items():
                patch.setenv(key, value)
            return load_settings()

    return load_settings(), load


def test_env_example_drift_values_are_the_real_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults, load = _loader(monkeypatch)
    assert env_example_default_problems(ENV_EXAMPLE, load, defaults) == []


def test_env_example_defaults_drift_caught_on_a_mutated_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults, load = _loader(monkeypatch)
    mutated = ENV_EXAMPLE.replace("ORCH_MAX_PARALLEL_JOBS=4", "ORCH_MAX_PARALLEL_JOBS=5")
    assert env_example_default_problems(mutated, load, defaults) == [
        "ORCH_MAX_PARALLEL_JOBS=5 is not the default"
    ]


def test_readme_says_doctor_wants_an_agent_cli_that_the_demo_does_not_need() -> None:
    doctor = README[README.index("`orch doctor` checks") :].split("\n\n", 1)[0]
    assert "reports the agent CLI as missing" in doctor
    assert "the demo's scripted agents need no CLI" in doctor
