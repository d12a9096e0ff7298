"""The real Claude Code and Codex CLIs when the model API fails, stalls, or is asked by doctor.

Each test runs once per CLI, against a local scripted model (tests/fakes): API errors map to
the kinds and retries SPEC section 15 gives them, a cancel leaves no process of the CLI's
tree behind, and `orch doctor --online` makes one real call.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.jobs.policy import agent_alert_kind
from orchestrator.proc.group import CancelToken, Started
from orchestrator.settings import load_settings
from orchestrator.transport import AgentRequest, AgentResult, ErrorKind, call_agent
from tests.fakes.model_script import ApiError, Exchange, Reply, Script, Stall, Text
from tests.helpers import git
from tests.real_agents import claude_on, codex_on

pytestmark = pytest.mark.slow

OrchExe = Callable[..., subprocess.CompletedProcess[str]]
Agent = Callable[[Script], AbstractContextManager[Any]]
GRACE_S = 2.0


@pytest.fixture(params=["claude", "codex"])
def agent(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    """Factory: the real CLI of this run as the configured agent, behind a scripted model."""
    monkeypatch.setenv("ORCH_DB_URL", f"sqlite:///{tmp_path / 'orch.db'}")
    monkeypatch.setenv("ORCH_DEFER_BACKOFF_S", "0.2")
    monkeypatch.setenv("ORCH_KILL_GRACE_S", str(GRACE_S))
    on = claude_on if request.param == "claude" else codex_on
    return lambda script: on(script, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("status", "kind", "attempts"),
    [
        (401, "auth", 1),  # a bad key stays bad: never retried
        (429, "rate_limited", 2),  # retried after a backoff, within ORCH_AGENT_RETRIES
        (529, "rate_limited", 2),  # Anthropic's "overloaded" is a rate limit too
        (500, "agent_error", 2),
    ],
)
def test_api_errors_become_the_jobs_error_kind_and_retries_follow_it(
    agent: Agent,
    make_repo: Callable[..., Path],
    orch_exe: OrchExe,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    kind: str,
    attempts: int,
) -> None:
    monkeypatch.setenv("ORCH_AGENT_RETRIES", "1")
    repo = make_repo("app")
    with agent(lambda exchange: ApiError(status, f"scripted {status}")):
        assert orch_exe("repo", "add", "app", str(repo)).returncode == 0
        created = orch_exe("task", "add", "app", "Anything", "--json")
        task_id = json.loads(created.stdout)["id"]
        drained = orch_exe("worker", "--drain")
        assert drained.returncode == 0, drained.stderr

    shown = json.loads(orch_exe("task", "show", task_id, "--json").stdout)
    assert (shown["state"], shown["stage"]) == ("blocked", "analysis")
    plural = "s" if attempts > 1 else ""
    assert f"failed ({kind}) after {attempts} attempt{plural}:" in shown["reason"]
    alerts = json.loads(orch_exe("status", "--json").stdout)
    assert agent_alert_kind(ErrorKind(kind)) in json.dumps(alerts)  # agent_error, not twice


def _stalled_request(tmp_path: Path) -> AgentRequest:
    worktree = tmp_path / "worktree"
    git(tmp_path, "init", "-q", str(worktree))  # Codex runs only in a git repository
    artifacts = tmp_path / "artifacts"
    return AgentRequest(
        role="analyst",
        stage="analysis",
        task_id="stall1",
        round=1,
        worktree=worktree,
        artifact_dir=artifacts,
        artifact_path=artifacts / "02-analysis.md",
        prompt="You are the **analyst**.\n",
        log_path=tmp_path / "logs" / "analyst.log",
        timeout_s=300,
    )


@pytest.mark.parametrize("stop", ["cancel", "timeout"])
def test_a_stalled_model_call_stopped_leaves_none_of_the_clis_processes(
    agent: Agent, tmp_path: Path, stop: str
) -> None:
    asked = threading.Event()

    def stall(exchange: Exchange) -> Reply:
        asked.set()
        return Stall()

    cancel = CancelToken()
    started: list[Started] = []
    results: list[AgentResult] = []
    with agent(stall):
        settings = load_settings()
        request = _stalled_request(tmp_path)
        if stop == "timeout":
            request = replace(request, timeout_s=5)
        call = threading.Thread(
            target=lambda: results.append(
                call_agent(settings, request, cancel=cancel, on_start=started.append)
            )
        )
        call.start()
        assert asked.wait(60), "the CLI never called the model"
        leader = psutil.Process(started[0].pid)
        tree = [leader, *leader.children(recursive=True)]
        if stop == "cancel":
            cancel.cancel()
        call.join(timeout=GRACE_S + 30)

    assert not call.is_alive()
    expected = ErrorKind.CANCELLED if stop == "cancel" else ErrorKind.TIMEOUT
    assert results[0].kind is expected
    survivors = [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], [p.cmdline() for p in survivors]


def test_doctor_online_makes_one_real_call_and_shows_the_permissions(
    agent: Agent, orch_exe: OrchExe
) -> None:
    with agent(lambda exchange: ApiError(401, "invalid x-api-key")):
        refused = orch_exe("doctor", "--online")

    with agent(lambda exchange: Text("ok")) as server:
        answered = orch_exe("doctor", "--online")

    line = next(x for x in answered.stdout.splitlines() if "agent online" in x)
    assert "✔" in line and "the model answered in" in line
    assert any(e.main for e in server.served.exchanges)
    permissions = next(x for x in answered.stdout.splitlines() if "agent permissions" in x)
    assert "acceptEdits" in permissions or "workspace-write" in permissions
    assert "--add-dir" in permissions
    line = next(x for x in refused.stdout.splitlines() if "agent online" in x)
    assert "✘" in line and "auth" in line
    assert refused.returncode == 1 and "not ready" in refused.stdout
