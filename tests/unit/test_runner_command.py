"""The test-runner's command line: the repo's test command as argv, and its JUnit report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.runners.test_runner import runs_pytest, with_junit, with_pytest_junitxml
from orchestrator.runners.test_runner import test_argv as argv_of
from orchestrator.store import Repo


def _repo(test_command: str | None = None, test_target: str = "tests") -> Repo:
    return Repo(
        id=1,
        name="app",
        path="/srv/app",
        default_branch="main",
        test_target=test_target,
        test_command=test_command,
        staging_command=None,
        deploy_command=None,
        health_url=None,
        setup_command=None,
        skip_stages=frozenset(),
        is_self=False,
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("command", "target", "argv"),
    [
        (None, "tests", ["python", "-m", "pytest", "tests"]),
        (None, "tests/unit", ["python", "-m", "pytest", "tests/unit"]),
        ("", "tests", ["python", "-m", "pytest", "tests"]),
        ("pytest -x", "tests", ["pytest", "-x"]),
        ("make test", "tests", ["make", "test"]),
        (
            "python3 -m pytest -k 'not slow' \"tests/a b.py\"",
            "tests",
            ["python3", "-m", "pytest", "-k", "not slow", "tests/a b.py"],
        ),
    ],
)
def test_the_test_command_as_argv(command: str | None, target: str, argv: list[str]) -> None:
    assert argv_of(_repo(command, target)) == argv


@pytest.mark.parametrize(
    ("argv", "is_pytest"),
    [
        (["python", "-m", "pytest", "tests"], True),
        (["python3", "-m", "pytest", "-q"], True),
        (["pytest", "-x"], True),
        (["/srv/app/.venv/bin/pytest"], True),
        (["py.test"], True),
        (["make", "test"], False),
        (["python", "-m", "unittest"], False),
        (["python", "-c", "import pytest"], False),
        (["tox"], False),
        ([], False),
    ],
)
def test_runs_pytest(argv: list[str], is_pytest: bool) -> None:
    assert runs_pytest(argv) is is_pytest


def test_with_junit_adds_the_lean_report_plugin_and_keeps_the_command() -> None:
    argv = with_junit(["pytest", "-x"], Path("/tmp/job.junit.xml"))
    assert argv == ["pytest", "-x", "-p", "orch_junit", "--orch-junit=/tmp/job.junit.xml"]


def test_the_fallback_is_pytests_own_xunit1_report() -> None:
    argv = with_pytest_junitxml(["pytest", "-x"], Path("/tmp/job.junit.xml"))
    assert argv[:2] == ["pytest", "-x"]
    assert "--junitxml=/tmp/job.junit.xml" in argv
    assert argv[argv.index("-o") + 1] == "junit_family=xunit1"
