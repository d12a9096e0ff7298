"""Self deploys happen only with the runners' proof, and only where a restart can follow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store
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


def drain(store: Store, db_url: str, home: Path, **overrides: object) -> None:
    settings = load_settings(
        db_url=db_url,
        home=home,
        agent_backend="command",
        agent_command="fake-agent {role}",
        defer_backoff_s=0.05,
        defer_backoff_max_s=0.1,
        deploy_finalizer_infra_retries=1,
        **overrides,
    )
    Worker(store, settings, drain=True).run()


def test_a_self_deploy_without_the_test_runners_proof_is_refused(
    fake_bin: Path, self_repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    before = git(self_repo, "rev-parse", "main")
    task = submit_task(store, orch_home, "self", "Change myself", "")
    drain(store, db_url, orch_home, test_runner_enabled=False)  # the LLM tester decides
    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, Stage.DEPLOY)
    log = store.get_artifact(task.id, "16-deploy-log.md").text
    assert "deploy_status: FAILED" in log and "test-runner" in log
    assert git(self_repo, "rev-parse", "main") == before  # nothing was merged


def test_a_self_deploy_waits_for_orch_serve_and_never_merges_in_a_plain_worker(
    fake_bin: Path, self_repo: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    before = git(self_repo, "rev-parse", "main")
    task = submit_task(store, orch_home, "self", "Change myself", "")
    drain(store, db_url, orch_home)  # both runners pass; no restart is possible here
    stopped = store.get_task(task.id)
    assert stopped.stage is Stage.DEPLOY and stopped.state is TaskState.BLOCKED
    log = store.get_artifact(task.id, "16-deploy-log.md").text
    assert "failure_kind: infra" in log and "orch serve" in log
    assert git(self_repo, "rev-parse", "main") == before
    assert store.self_deploys() == []
