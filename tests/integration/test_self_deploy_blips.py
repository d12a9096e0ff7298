"""A self deploy whose job is run again after the merge landed (a database blip made the
worker re-queue it) still knows what it merged and what to revert to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.jobs.context import JobContext, JobEnd
from orchestrator.proc import CancelToken
from orchestrator.runners.base import RunnerRequest
from orchestrator.selfhost.deploy_job import run_self_deploy, self_deploy_steps
from orchestrator.selfhost.rollback import revert_merge
from orchestrator.settings import load_settings
from orchestrator.store import Job, SelfDeployState, Store
from tests.helpers import git, unique_marker
from tests.integration.test_self_deploy_settle import TASK, job, merge, rev, self_repo

__all__ = ["job", "self_repo"]  # fixtures


@pytest.fixture
def token() -> Iterator[CancelToken]:
    cancel = CancelToken()
    yield cancel
    cancel.close()


def test_a_retry_after_a_blip_records_the_merge_it_finds_and_can_revert_it(
    store: Store,
    self_repo: Path,
    job: Job,
    orch_home: Path,
    db_url: str,
    tmp_path: Path,
    token: CancelToken,
) -> None:
    base, merged = merge(store, self_repo, job)  # recorded, and the branch moved
    # Then the database blinked: the worker could not record the restart, and re-queued
    # the job (scheduler/worker.py); the next attempt finds the branch merged already.
    store.abandon_job(job, "database fault: server closed the connection; re-queued")
    [retry] = store.claim_jobs("w2", "here", 1, 60.0, self_deploy=True)
    settings = load_settings(home=orch_home, db_url=db_url)
    task, repo = store.get_task(TASK), store.get_repo("self")
    request = RunnerRequest(
        task=task,
        repo=repo,
        job=retry,
        settings=settings,
        artifact_path=tmp_path / "16-deploy-log.md",
        log_path=tmp_path / "deploy.log",
        cancel=token,
        on_start=lambda started: None,
        marker=unique_marker(),
    )
    context = JobContext(store, settings, token, "w2", take_over=self_deploy_steps)

    assert run_self_deploy(context, retry, task, repo, request) is JobEnd.RESTART

    [again] = [d for d in store.self_deploys(SelfDeployState.PENDING) if d.job_id == retry.id]
    assert (again.old_commit, again.merged_commit) == (base, merged)
    revert, how = revert_merge(store, again)  # the new code came up unhealthy
    assert revert is not None, how
    assert (self_repo / "app.py").read_text() == "VERSION = 1\n"
    assert git(self_repo, "diff", base, rev(self_repo)) == ""
