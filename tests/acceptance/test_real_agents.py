"""The real Claude Code and Codex CLIs through the real spawn path, against local models.

Each test runs once per CLI. The model is scripted (tests/fakes); everything else is what a
user runs: the pinned CLI with its own tools, permission checks and sandbox, `orch` as a
subprocess, real git, real pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import load_settings
from orchestrator.store import Job, open_store
from tests.fakes.model_script import Exchange, Reply, Script, Text, Write
from tests.helpers import OrchExe, add_task, drain, git, show
from tests.real_agents import (
    Change,
    answering,
    assert_usage_matches,
    claude_on,
    codex_on,
    delivering,
)

pytestmark = pytest.mark.slow

Agent = Callable[[Script], AbstractContextManager[Any]]

CALC = {
    "calc.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return None\n",
    "tests/test_calc.py": (
        "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(3, 4) == 12\n"
    ),
    ".gitignore": "__pycache__/\n",
}
MUL = Change("calc.py", "    return None\n", "    return a * b\n")
# Stages that need no agent and no service: a task goes analysis to testing, then merges.
QUICK = "design,review,deploy-staging,post-deploy"


@pytest.fixture(params=["claude", "codex"])
def agent(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    """Factory: the real CLI of this run as the configured agent, behind a scripted model."""
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    monkeypatch.setenv("ORCH_AGENT_TIMEOUT_S", "120")
    monkeypatch.setenv("ORCH_DEFER_BACKOFF_S", "0.2")
    on = claude_on if request.param == "claude" else codex_on
    return lambda script: on(script, tmp_path, monkeypatch)


@pytest.fixture
def calc(make_repo: Callable[..., Path]) -> Path:
    return make_repo("calc", files=CALC)


def _submit(orch_exe: OrchExe, repo: Path, skip: str) -> str:
    added = orch_exe("repo", "add", "calc", str(repo), "--skip-stages", skip)
    assert added.returncode == 0, added.stderr
    return add_task(orch_exe, "calc", "Make mul multiply")


def _jobs(task_id: str) -> list[Job]:
    store = open_store(load_settings())
    try:
        return store.task_jobs(task_id)
    finally:
        store.close()


def _conversations(server: Any) -> int:
    """How many agent calls the model server saw begin."""
    return sum(1 for e in server.served.exchanges if e.main and e.turn == 0)


def test_a_task_goes_through_every_agent_stage_to_done_with_the_clis_own_writes(
    agent: Agent, calc: Path, orch_home: Path, orch_exe: OrchExe
) -> None:
    with agent(delivering(orch_home, MUL)) as server:
        task_id = _submit(orch_exe, calc, "deploy-staging,post-deploy")
        drain(orch_exe)

    shown = show(orch_exe, task_id)
    assert shown["state"] == "done", shown.get("reason")
    moves = [(e["from_stage"], e["to_stage"], e["producer"]) for e in shown["events"]]
    assert moves == [
        (None, "analysis", "intake"),
        ("analysis", "design", "analyst"),
        ("design", "development", "architect"),
        ("development", "review", "developer"),
        ("review", "testing", "reviewer"),
        ("testing", "deploy", "test-runner"),
        ("deploy", "done", "deploy-finalizer"),
    ]
    # The artifacts are the files the CLI's own write tool made: the model's words, stored.
    for name in ("02-analysis.md", "05-design.md", "10-development.md", "11-code-review.md"):
        text = orch_exe("task", "artifact", task_id, name).stdout
        assert "Written by the scripted model." in text, name
    # The model's edit, committed by the orchestrator, passed real pytest and was merged.
    assert "return a * b" in git(calc, "show", "main:calc.py")
    report = orch_exe("task", "artifact", task_id, "13-test-report.md").stdout
    assert "result: PASS" in report and "tests_failed: 0" in report
    assert_usage_matches(_jobs(task_id), server)
    # The CLI's own stream, as a person reads it: one line per turn, no raw JSON.
    logs = orch_exe("task", "logs", task_id, "--stage", "development")
    assert logs.returncode == 0, logs.stderr
    assert '{"type"' not in logs.stdout, logs.stdout[:2000]
    assert any(line.startswith("→ ") for line in logs.stdout.splitlines()), logs.stdout[:2000]
    raw = orch_exe("task", "logs", task_id, "--stage", "development", "--raw").stdout
    assert '{"type"' in raw


def test_a_model_that_only_talks_blocks_with_no_artifact_and_its_last_words(
    agent: Agent, calc: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_AGENT_RETRIES", "1")
    words = "I have looked at the repository and everything seems fine to me."
    with agent(answering(words)) as server:
        task_id = _submit(orch_exe, calc, QUICK)
        drain(orch_exe)

    shown = show(orch_exe, task_id)
    assert (shown["state"], shown["stage"]) == ("blocked", "analysis")
    assert "failed (no_artifact) after 2 attempts" in shown["reason"]
    assert "exited 0 without writing 02-analysis.md" in shown["reason"]
    assert f"its final message ends: “{words}”" in shown["reason"]
    assert [job.error_kind for job in _jobs(task_id)] == ["no_artifact"]
    assert _conversations(server) == 2  # the first call, and its one retry


def test_a_denied_write_blocks_at_once_and_names_the_denial(
    agent: Agent, calc: Path, orch_exe: OrchExe, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere" / "analysis.md"  # neither the worktree nor the artifacts
    outside.parent.mkdir()

    def misplaced(exchange: Exchange) -> Reply:
        if exchange.turn == 0:
            return Write(str(outside), "analysis_status: READY\n")
        return Text("I wrote the analysis.")

    with agent(misplaced) as server:
        task_id = _submit(orch_exe, calc, QUICK)
        drain(orch_exe)

    shown = show(orch_exe, task_id)
    assert (shown["state"], shown["stage"]) == ("blocked", "analysis")
    assert "failed (permission_denied) after 1 attempt:" in shown["reason"]
    assert str(outside) in shown["reason"]
    assert "denied Write to" in shown["reason"] or "Read-only file system" in shown["reason"]
    assert not outside.exists()
    assert [job.error_kind for job in _jobs(task_id)] == ["permission_denied"]
    assert _conversations(server) == 1  # not retried: the same call would be refused again
    alerts = orch_exe("status", "--json")
    assert "permission_denied" in alerts.stdout
