"""Self deploys happen only with the runners' proof, and only where a restart can follow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.selfhost.hosting import SelfHosting
from orchestrator.settings import Settings, load_settings
from orchestrator.store import JobStatus, RepoSpec, Store
from tests.helpers import git

FILES = {
    "README.md": "# self\n",
    "tests/test_ok.py": "def test_ok():\n    assert True\n",
    "staging.py": "print('staging ok')\n",
}


@pytest.fixture
def self_repo(make_repo: Callable[..., Path], store: Store) -> Path:
    path = make_repo("self", files=FILES)
    store.add_repo(
        "self",
        RepoSpec(
            path=str(path), default_branch="main", is_self=True, staging_command="python staging.py"
        ),
    )
    return path


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    return load_settings(
        db_url=db_url,
        home=home,
        agent_backend="command",
        agent_command="fake-agent {role}",
        defer_backoff_s=0.05,
        defer_backoff_max_s=0.1,
        deploy_finalizer_infra_retries=1,
        **overrides,
    )


def drain_as_the_service(store: Store, db_url: str, home: Path, **overrides: object) -> None:
    """Drain with the worker of a supervised `orch serve` (the one that can restart)."""
    restarts: list[int] = []
    worker = Worker(
        store,
        settings_for(db_url, home, **overrides),
        drain=True,
        hosting=SelfHosting(restart=lambda: restarts.append(1)),
    )
    assert worker.run() == 0
    assert restarts == []


def test_a_self_deploy_without_the_test_runners_proof_is_refused(
    fake_bin: Path, self_repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    before = git(self_repo, "rev-parse", "main")
    task = submit_task(store, orch_home, "self", "Change myself", "")
    drain_as_the_service(store, db_url, orch_home, test_runner_enabled=False)  # LLM tester
    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, Stage.DEPLOY)
    log = store.get_artifact(task.id, "16-deploy-log.md").text
    assert "deploy_status: FAILED" in log and "test-runner" in log
    assert git(self_repo, "rev-parse", "main") == before  # nothing was merged


def test_a_plain_worker_leaves_a_self_deploy_to_orch_serve_without_spending_its_budget(
    fake_bin: Path, self_repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    before = git(self_repo, "rev-parse", "main")
    task = submit_task(store, orch_home, "self", "Change myself", "")
    worker = Worker(store, settings_for(db_url, orch_home))  # `orch worker`: no restart
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while store.get_task(task.id).stage is not Stage.DEPLOY:
            assert time.monotonic() < deadline, "the task never reached its deploy"
            time.sleep(0.05)
        time.sleep(1.5)  # the worker looks for work again and again meanwhile
    finally:
        worker.stop()
        thread.join(30)
    waiting = store.get_task(task.id)
    assert (waiting.stage, waiting.state) == (Stage.DEPLOY, TaskState.ACTIVE)
    deploy = store.task_jobs(task.id)[-1]
    assert (deploy.stage, deploy.status) == (Stage.DEPLOY, JobStatus.QUEUED)
    assert (deploy.attempt, deploy.infra_failures) == (0, 0)  # never claimed, nothing spent
    assert store.waiting_self_deploys() == [task.id]
    assert git(self_repo, "rev-parse", "main") == before
    assert store.self_deploys() == []
