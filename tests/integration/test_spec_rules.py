"""Two SPEC 15 rules that scripts rely on and nothing pinned: an abandoned or reclaimed job
never counts against a budget, and a task's artifact list names each artifact once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.scheduler.recovery import take_over
from orchestrator.store import JobMetrics, RepoSpec, Store
from tests.conftest import Run
from tests.helpers import fake_agent_settings
from tests.integration.test_leases import ELSEWHERE, LEASE_S, add_task, claim


def counters(store: Store, task_id: str) -> list[tuple[int, int, int]]:
    return [
        (j.infra_failures, j.agent_failures, j.internal_failures) for j in store.task_jobs(task_id)
    ]


def test_abandoned_and_reclaimed_jobs_keep_their_counters_and_add_nothing(store: Store) -> None:
    task_id = add_task(store, "aaaa2222")
    for counted in ("agent", "infra", "internal"):  # one failure of each kind, counted
        job = claim(store, "w-1")
        metrics = JobMetrics(producer="analyst", outcome="deferred")
        store.defer_job(job, -1.0, metrics, counted=counted)
    assert counters(store, task_id) == [(1, 1, 1)]

    store.abandon_job(claim(store, "w-1"), "the worker stopped; re-queued")  # a clean stop
    assert counters(store, task_id)[-1] == (1, 1, 1)

    claim(store, ELSEWHERE.worker_id, ELSEWHERE.host)  # then its worker dies: a reclaim
    time.sleep(LEASE_S * 2)
    requeued = take_over(store, ELSEWHERE, 0.1)
    assert len(requeued) == 1
    assert counters(store, task_id)[-1] == (1, 1, 1)


@pytest.fixture
def repo(make_repo: Callable[..., Path], store: Store) -> Path:
    path = make_repo("app")
    skipped = frozenset({Stage.DEPLOY, Stage.POST_DEPLOY})
    store.add_repo("app", RepoSpec(path=str(path), default_branch="main", skip_stages=skipped))
    return path


def test_the_artifact_list_names_each_artifact_once_after_several_rounds(
    fake_bin: Path,
    repo: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    orch: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "2")  # rounds 1 and 2 go back
    added = orch("task", "add", "app", "Three rounds", "--json")
    task_id = json.loads(added.out)["id"]
    settings = fake_agent_settings(
        db_url, orch_home, agent_command="fake-agent {role}", test_runner_enabled=False
    )
    assert Worker(store, settings, drain=True).run() == 0
    task = store.get_task(task_id)
    assert (task.state, task.round) == (TaskState.DONE, 3)

    shown = json.loads(orch("task", "show", task_id, "--json").out)
    names = shown["artifacts"]
    assert len(names) == len(set(names)), names
    assert "11-code-review.md" in names  # written in each of the three rounds
