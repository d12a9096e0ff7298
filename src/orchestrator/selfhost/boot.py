"""What a (re)started `orch serve` does first: complete the self deploy that restarted it.

The process that ran the deploy merged the change, recorded a pending deploy and exited to
be restarted on the new code. This process, running that code, writes the deploy verdict
(`16-deploy-log.md` with the old, merged and new commits) in the same transaction that marks
the deploy completed: a crash at any moment completes it exactly once. It runs before the
worker starts, so crash recovery never mistakes the deploy job for an abandoned one.
"""

from __future__ import annotations

import logging

from orchestrator.pipeline.gates import run_gate
from orchestrator.pipeline.stages import Producer, Stage
from orchestrator.pipeline.transitions import decide_transition
from orchestrator.selfhost.code import code_commit
from orchestrator.settings import Settings
from orchestrator.store import JobMetrics, JobStatus, SelfDeploy, Store, Verdict

log = logging.getLogger(__name__)

RESTART_EXIT = 75  # `orch serve` exits with this to be restarted on new code (EX_TEMPFAIL)


def deploy_log(deploy: SelfDeploy, new_commit: str | None, status: str, note: str = "") -> str:
    """`16-deploy-log.md` of a self deploy."""
    lines = [
        "# Deploy log (self deploy)",
        "",
        f"deploy_status: {status}",
        f"failure_kind: {'none' if status == 'DEPLOYED' else 'deploy'}",
        "producer: deploy-finalizer",
        f"merged_commit: {deploy.merged_commit}",
        f"base_commit: {deploy.old_commit or '-'}",
        f"old_commit: {deploy.old_commit or '-'}",
        f"new_commit: {new_commit or '-'}",
        "",
        "The change was merged into the orchestrator's own checkout and the service restarted "
        "on it.",
    ]
    if note:
        lines += ["", note]
    if deploy.note:
        lines += ["", deploy.note]
    return "\n".join(lines) + "\n"


def complete_pending_deploys(store: Store, settings: Settings) -> None:
    """Complete every pending self deploy (normally none, or the one that restarted us)."""
    for deploy in store.self_deploys("pending"):
        job = store.get_job(deploy.job_id)
        if job.status is not JobStatus.RUNNING or job.attempt != deploy.attempt:
            log.warning(
                "self deploy %s: its job %s is %s; leaving it", deploy.id, job.id, job.status
            )
            continue
        new = code_commit()
        text = deploy_log(deploy, new, "DEPLOYED")
        gate = run_gate(Stage.DEPLOY, text)
        repo = store.get_repo(store.get_task(deploy.task_id).repo)
        move = decide_transition(
            Stage.DEPLOY, gate, job.round, settings.max_dev_retries, repo.skip_stages
        )
        metrics = JobMetrics(
            producer=Producer.DEPLOY_FINALIZER.value, outcome="verdict", backend="deterministic"
        )
        verdict = Verdict(
            job, Producer.DEPLOY_FINALIZER, "16-deploy-log.md", text, gate.verdict, move, metrics
        )
        task = store.complete_self_deploy(deploy, new, verdict)
        if task is not None:
            log.info(
                "self deploy of task %s completed: now on %s (was %s)",
                task.id,
                new,
                deploy.old_commit,
            )
