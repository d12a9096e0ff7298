"""The deploy job of the orchestrator's own repo: merge, record, restart; never lose the base.

The pending self deploy is recorded after the merge commit exists and before the default
branch moves (the deploy-finalizer's `before_move`), fenced by the job's attempt. So a kill
at any moment leaves one of two things: no record and an unmoved branch (the job is simply
run again), or a pending record that names the base and merge commits, which the restarted
service completes, abandons (the branch never moved) or rolls back, exactly once.

Once the merge has landed, the job either restarts the service or ends with a verdict in the
same transaction that settles the record. If it is run again all the same (a database blip
made the worker re-queue it), the retry finds the change merged, and records the merge that
landed it, found in git, so that a rollback still knows what to revert.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.errors import StaleState
from orchestrator.jobs.context import JobContext, JobEnd, Step, rules
from orchestrator.pipeline.stages import Producer, Stage, TaskState
from orchestrator.pipeline.transitions import judge
from orchestrator.runners.base import FailureKind, RunnerOutcome, RunnerRequest
from orchestrator.runners.deploy_finalizer import has_landed, render_log
from orchestrator.selfhost.code import code_checkout
from orchestrator.selfhost.finalizer import Restart, SelfDeployFinalizer
from orchestrator.store import Job, JobMetrics, Repo, SelfDeploy, SelfDeployState, Task, Verdict

log = logging.getLogger(__name__)


def checkout_refusal(repo: Repo, job: Job) -> RunnerOutcome | None:
    """A FAILED deploy when the self repo is not the checkout this service runs from: the
    restart could not land on the merged code, so nothing is merged."""
    running = code_checkout()
    wanted = None if repo.is_remote else Path(repo.path).resolve()
    if running is not None and wanted is not None and running.resolve() == wanted:
        return None
    where = str(running) if running is not None else "no git checkout (not an editable install)"
    text = (
        "# Deploy log (self deploy refused)\n\ndeploy_status: FAILED\nfailure_kind: deploy\n"
        f"producer: deploy-finalizer\n\nThe self repo is {repo.path}, but this service runs "
        f"from {where}: a restart could not run the merged code. Nothing was merged (round "
        f"{job.round}); register the checkout the service runs from with --self.\n"
    )
    return RunnerOutcome(artifact=text)


def self_deploy_steps(job: Job, repo: Repo) -> Step | None:
    """The jobs this layer takes over from the ordinary path (`JobContext.take_over`): the
    deploy of the service's own code."""
    return self_deploy_step if job.stage is Stage.DEPLOY and repo.is_self else None


def self_deploy_step(
    ctx: JobContext, job: Job, task: Task, repo: Repo, request: RunnerRequest
) -> RunnerOutcome | JobEnd:
    """The supervised service's deploy of its own code: refused without the runners' proof
    or from another checkout; otherwise the pending deploy is recorded before the branch
    moves, and the verdict is written by the restarted process (selfhost/boot.py)."""
    refusal = proof_refusal(ctx, job, task) or checkout_refusal(repo, job)
    return refusal or run_self_deploy(ctx, job, task, repo, request)


def proof_refusal(ctx: JobContext, job: Job, task: Task) -> RunnerOutcome | None:
    """A FAILED deploy when a self deploy lacks its proof: the test-runner and the
    staging-runner must both have passed this very round (an LLM's word is not enough to
    redeploy the orchestrator itself)."""
    passed = {
        (e.from_stage, e.producer)
        for e in ctx.store.events(task.id)
        if e.round == job.round and e.verdict in ("PASS", "PASSED")
    }
    needed = {
        (Stage.TESTING.value, Producer.TEST_RUNNER),
        (Stage.DEPLOY_STAGING.value, Producer.STAGING_RUNNER),
    }
    missing = needed - passed
    if not missing:
        return None
    names = " and ".join(sorted(str(producer) for _, producer in missing))
    text = (
        "# Deploy log (self deploy refused)\n\ndeploy_status: FAILED\nfailure_kind: deploy\n"
        f"producer: deploy-finalizer\n\nA self deploy needs the {names} to have passed round "
        f"{job.round} of this change; nothing was merged.\n"
    )
    return RunnerOutcome(artifact=text)


def run_self_deploy(
    ctx: JobContext, job: Job, task: Task, repo: Repo, request: RunnerRequest
) -> RunnerOutcome | JobEnd:
    """Run the self-deploy-finalizer. A JobEnd when the job is settled here; otherwise an
    outcome for the ordinary path (nothing landed: a verdict or a deferral)."""
    recorded: list[SelfDeploy] = []
    # With a deploy command, the record says it has not finished until the restart is asked
    # for: a boot after a kill in between must not take the merge as deployed.
    command = bool(repo.deploy_command)

    def record(base: str, merged: str) -> None:
        recorded.append(ctx.store.record_self_deploy(job, base, merged, command=command))

    outcome: RunnerOutcome | Restart
    try:
        outcome = SelfDeployFinalizer().run(request, before_move=record)
    except StaleState:
        raise  # this attempt no longer holds the job: record nothing more
    except Exception as exc:  # the runner contract: never raise, a tool error instead
        log.exception("the self-deploy-finalizer raised while running job %s", job.id)
        outcome = RunnerOutcome.tool_error(f"deploy-finalizer raised {type(exc).__name__}: {exc}")
    deploy = recorded[0] if recorded else None
    if isinstance(outcome, Restart):
        if deploy is None:  # merged already (by an earlier attempt, or a person): name it
            ctx.store.record_self_deploy(job, outcome.base, outcome.merged, outcome.note)
        else:
            ctx.store.note_self_deploy(deploy, job, outcome.note)
        log.info("task %s: self deploy merged %s; restarting on it", task.id, outcome.merged)
        return JobEnd.RESTART
    if deploy is None:
        return outcome
    if not has_landed(Path(repo.path), deploy.merged_commit, repo.default_branch):
        why = outcome.reason or "the merge was refused"
        ctx.store.settle_self_deploy(
            deploy, SelfDeployState.ABANDONED, f"the branch did not move: {why}"
        )
        return outcome
    return _settle_landed(ctx, job, task, repo, request, deploy, outcome)


def _settle_landed(
    ctx: JobContext,
    job: Job,
    task: Task,
    repo: Repo,
    request: RunnerRequest,
    deploy: SelfDeploy,
    outcome: RunnerOutcome,
) -> JobEnd:
    """The merge landed but the service will not restart: one verdict, with the record."""
    if outcome.cancelled and ctx.store.get_task(task.id).state is TaskState.CANCELLED:
        ctx.store.settle_self_deploy(
            deploy, SelfDeployState.CANCELLED, "the task was cancelled after the merge"
        )
        return JobEnd.CANCELLED
    text = outcome.artifact
    if text is None:
        why = "it was stopped" if outcome.cancelled else f"it could not run: {outcome.reason}"
        note = (
            f"The merge landed ({deploy.merged_commit}), then the deploy command did not "
            f"complete ({why}). The merge stays; it is not retried."
        )
        text = render_log(request, False, FailureKind.INFRA, note, None)
    request.artifact_path.parent.mkdir(parents=True, exist_ok=True)
    request.artifact_path.write_text(text, encoding="utf-8")
    judged = judge(
        job.stage, text, job.round, rules(ctx.settings), repo.skip_stages, pipeline=task.pipeline
    )
    metrics = JobMetrics(
        producer=Producer.DEPLOY_FINALIZER.value,
        outcome="verdict",
        log_path=str(request.log_path),
        backend="deterministic",
        exit_code=outcome.exit_code,
        duration_s=outcome.duration_s,
    )
    name = request.artifact_path.name
    verdict = Verdict.of(job, Producer.DEPLOY_FINALIZER, name, text, judged, metrics)
    if not ctx.store.settle_self_deploy(
        deploy, SelfDeployState.FAILED, "the deploy did not complete", verdict
    ):
        raise StaleState(f"the self deploy {deploy.id} was settled by someone else")
    log.info("task %s: self deploy %s ended without a restart", task.id, judged.gate.verdict)
    return JobEnd.VERDICT
