"""What a (re)started `orch serve` does first: settle the self deploy that restarted it.

The process that ran the deploy recorded a pending deploy, moved the default branch and
exited to be restarted on the new code. This process settles it, before its worker starts
(so crash recovery never mistakes the deploy job for an abandoned one), exactly once:

- the branch never moved (killed between the record and the move): the record is abandoned
  and crash recovery runs the deploy job again, which merges afresh;
- the running code is the merged commit (or a commit on top of it): the deploy verdict
  (`16-deploy-log.md` with the old, merged and new commits) commits in the same transaction
  that marks it completed;
- the service stopped while the deploy command ran (the record still says so): the
  command's outcome is unknown, and the merge is rolled back;
- the running code is anything else (another commit, or no checkout at all): the start
  failed, and the merge is rolled back as the supervisor would.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.jobs.context import rules
from orchestrator.pipeline.stages import Producer, Stage, artifact_for
from orchestrator.pipeline.transitions import judge
from orchestrator.runners.deploy_finalizer import has_landed
from orchestrator.selfhost.code import code_commit
from orchestrator.selfhost.deploy_log import deploy_log
from orchestrator.selfhost.rollback import roll_back
from orchestrator.settings import Settings
from orchestrator.store import JobMetrics, JobStatus, SelfDeploy, SelfDeployState, Store, Verdict
from orchestrator.workspace import git

log = logging.getLogger(__name__)

RESTART_EXIT = 75  # `orch serve` exits with this to be restarted on new code (EX_TEMPFAIL)

__all__ = ["RESTART_EXIT", "complete_pending_deploys", "deploy_log", "self_health_url"]


def self_health_url(settings: Settings) -> str:
    """The service's own /health, as this process serves it."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}/health"


def complete_pending_deploys(store: Store, settings: Settings) -> None:
    """Settle every pending self deploy (normally none, or the one that restarted us)."""
    for deploy in store.self_deploys(SelfDeployState.PENDING):
        job = store.get_job(deploy.job_id)
        if job.status is not JobStatus.RUNNING or job.attempt != deploy.attempt:
            # Its job ended otherwise (a person cancelled it, and we died before settling).
            store.settle_self_deploy(
                deploy, SelfDeployState.ABANDONED, f"its job ended as {job.status}"
            )
            log.warning(
                "self deploy %s: its job %s is %s; abandoned", deploy.id, job.id, job.status
            )
            continue
        repo = store.get_repo(store.get_task(deploy.task_id).repo)
        if not has_landed(Path(repo.path), deploy.merged_commit, repo.default_branch):
            store.settle_self_deploy(
                deploy, SelfDeployState.ABANDONED, "the service stopped before the branch moved"
            )
            log.warning("self deploy %s never landed: its deploy job runs again", deploy.id)
            continue
        if deploy.command_running:
            # Killed while the deploy command ran (an install cut short): its outcome is
            # unknown, and an unknown is never a green.
            problem = "stopped before its deploy command finished"
            log.error("self deploy %s: the service %s; rolling back", deploy.id, problem)
            roll_back(store, settings, deploy, problem, self_health_url(settings))
            continue
        new = code_commit()
        # The merged commit, or one a person committed on top of it before the restart.
        if new is None or not git.is_ancestor(Path(repo.path), deploy.merged_commit, new):
            problem = (
                f"restarted on {new[:12] if new else 'code from no git checkout'}, "
                f"not on the merged commit"
            )
            log.error("self deploy %s: the service %s; rolling back", deploy.id, problem)
            roll_back(store, settings, deploy, problem, self_health_url(settings))
            continue
        _complete(store, settings, deploy, new)


def _complete(store: Store, settings: Settings, deploy: SelfDeploy, new: str) -> None:
    job = store.get_job(deploy.job_id)
    text = deploy_log(deploy, new, "DEPLOYED")
    task, repo = store.task_and_repo(deploy.task_id)
    judged = judge(
        Stage.DEPLOY, text, job.round, rules(settings), repo.skip_stages, pipeline=task.pipeline
    )
    metrics = JobMetrics(
        producer=Producer.DEPLOY_FINALIZER.value, outcome="verdict", backend="deterministic"
    )
    name = artifact_for(Stage.DEPLOY)
    verdict = Verdict.of(job, Producer.DEPLOY_FINALIZER, name, text, judged, metrics)
    completed = store.complete_self_deploy(deploy, new, verdict)
    if completed is not None:
        log.info(
            "self deploy of task %s completed: now on %s (was %s)",
            completed.id,
            new,
            deploy.old_commit,
        )
