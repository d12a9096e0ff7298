"""What the accounting keeps of each agent call, stopped ones included, and the calls and
tokens the runners avoided, with the fake claude on the real spawn path."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.intake import submit_task
from orchestrator.jobs.context import JobContext, JobEnd
from orchestrator.jobs.launcher import launch_job
from orchestrator.overview import status_report
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.proc import CancelToken
from orchestrator.scheduler import Worker
from orchestrator.settings import Settings, load_settings
from orchestrator.store import RepoSpec, Store, Task
from orchestrator.store.schema import agent_calls

SKIP = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})


@pytest.fixture
def repo(make_repo: Callable[..., Path], store: Store) -> Path:
    """The repo `app`, whose suite passes: the test-runner judges it when switched on."""
    path = make_repo("app")
    passing = shlex.join(["python", "-c", "pass"])
    store.add_repo(
        "app", RepoSpec(str(path), default_branch="main", skip_stages=SKIP, test_command=passing)
    )
    return path


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "db_url": db_url,
        "home": home,
        "agent_backend": "claude",
        "test_runner_enabled": False,
        **overrides,
    }
    return load_settings(**values)


def run_one(store: Store, home: Path, settings: Settings) -> Task:
    task = submit_task(store, home, "app", "Rename x", "")
    Worker(store, settings, drain=True).run()
    return store.get_task(task.id)


def recorded(store: Store, task_id: str) -> list[dict[str, Any]]:
    query = select(agent_calls).where(agent_calls.c.task_id == task_id).order_by(agent_calls.c.id)
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def test_a_call_is_stored_with_its_backend_cache_tokens_and_duration(
    fake_bin: Path, repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    task = run_one(store, orch_home, settings_for(db_url, orch_home))
    assert task.state is TaskState.DONE
    analysis = recorded(store, task.id)[0]
    # What the fake claude reported in its result event, as Claude Code prints it.
    assert {k: analysis[k] for k in ("call_site", "backend", "error_kind")} == {
        "call_site": "A1",
        "backend": "claude",
        "error_kind": "ok",
    }
    assert (analysis["cache_read_tokens"], analysis["cache_write_tokens"]) == (9000, 200)
    assert (analysis["tokens_in"], analysis["tokens_out"]) == (1500, 320)
    assert analysis["cost_usd"] == pytest.approx(0.0421)
    # Measured around the real process, not the 1.2 s the CLI claims.
    assert analysis["duration_s"] is not None and 0 < analysis["duration_s"] < 60


def test_a_cancelled_agent_call_is_accounted(
    fake_bin: Path,
    repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_CLAUDE_MODE", "hang")  # the analyst never answers
    settings = settings_for(db_url, orch_home)
    task = submit_task(store, orch_home, "app", "Rename x", "")
    [job] = store.claim_jobs("w-test", "host", 1, settings.lease_s)
    cancel = CancelToken()
    ended: list[JobEnd] = []
    context = JobContext(store, settings, cancel, "w-test")
    running = threading.Thread(target=lambda: ended.append(launch_job(context, job)))
    running.start()
    try:
        # Stop it once the agent has started (its process is recorded on the job).
        for _ in range(200):
            if store.get_job(job.id).pid is not None:
                break
            cancel.wait(0.05)
        cancel.cancel()
        running.join(timeout=30)
    finally:
        cancel.cancel()
        running.join(timeout=30)
        cancel.close()
    assert ended == [JobEnd.CANCELLED]
    [call] = recorded(store, task.id)
    assert (call["call_site"], call["backend"], call["error_kind"]) == ("A1", "claude", "cancelled")
    assert call["duration_s"] is not None and call["duration_s"] > 0


def test_tokens_avoided_are_the_calls_avoided_times_the_mean_of_the_fallbacks_calls(
    fake_bin: Path, repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    # One task with the LLM tester (its call: 1500 in + 320 out), two with the test-runner.
    run_one(store, orch_home, settings_for(db_url, orch_home))
    by_runner = settings_for(db_url, orch_home, test_runner_enabled=True)
    for _ in range(2):
        assert run_one(store, orch_home, by_runner).state is TaskState.DONE
    figures = status_report(store)["determinization"]
    assert figures["llm_calls_avoided"] == 2
    assert figures["tokens_avoided_estimate"] == 2 * (1500 + 320)
    assert store.determinization().llm_calls_avoided_by_stage == {
        "testing": 2,
        "deploy-staging": 0,
    }
