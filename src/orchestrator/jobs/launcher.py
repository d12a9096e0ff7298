"""`launch_job`: the single place where a stage's job starts.

It first asks the reserved-agent table whether a deterministic runner claims the stage and,
if one does, runs it (intercepting BEFORE `_spawn`). Only when no runner claims the stage does
`_spawn` start an LLM agent through the transport. Either way the artifact goes to the stage's
unchanged gate, and the verdict, the event and the move commit in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.jobs.accounting import account, over_budget
from orchestrator.jobs.context import JobContext, JobEnd, commit_verdict
from orchestrator.jobs.policy import (
    Next,
    after_agent_failure,
    after_tool_error,
    agent_alert_kind,
    backoff_s,
)
from orchestrator.jobs.reserved import claiming_runner, run_reserved
from orchestrator.jobs.setup import ensure_setup
from orchestrator.jobs.summary import failure_summary
from orchestrator.pipeline.stages import TASK_ARTIFACT, Producer
from orchestrator.prompts import PromptContext, render_prompt
from orchestrator.redact import redact
from orchestrator.settings import Settings
from orchestrator.store import Artifact, Job, JobMetrics, Repo, Store, Task
from orchestrator.transport import AgentRequest, AgentResult, ErrorKind, call_agent
from orchestrator.workspace import checkout, git, layout
from orchestrator.workspace.merging import fix_round_note, merge_base_in

log = logging.getLogger(__name__)

# An unexpected exception in the orchestrator's own code while running a job is retried this
# many times (it may be a passing fault), then the task is blocked for a person.
INTERNAL_ERROR_RETRIES = 2


def launch_job(ctx: JobContext, job: Job) -> JobEnd:
    """Run one job of a task's stage to its end: a reserved runner, else an LLM agent."""
    task, repo = ctx.store.task_and_repo(job.task_id)
    # A remote repo's task gets a worktree on this machine, at the tip of its pushed branch.
    task = checkout.prepare(ctx.settings.home, repo, task)
    not_ready = ensure_setup(ctx, job, task, repo)
    if not_ready is not None:
        return not_ready
    spec = task.pipeline.spec(job.stage)
    reserved = claiming_runner(spec, repo, ctx.settings)
    if reserved is not None:
        return run_reserved(ctx, job, task, repo, reserved)
    role = spec.llm_role
    if role is None:
        # A built-in stage whose runner is off, or an approval stage (none is ever queued;
        # this is its last line of defence): nothing but a person may give the verdict.
        producer = spec.runner or Producer.PERSON
        reason = (
            f"{producer} is switched off or does not cover repo {repo.name}, and the "
            f"{job.stage} stage has no LLM fallback: it waits for a person's verdict (orch task "
            f"approve {task.id}, or orch task reject {task.id} --reason ...)"
        )
        metrics = JobMetrics(producer=str(producer), outcome="blocked", error_kind="no_runner")
        ctx.store.block_task(job, reason, metrics, alert_kind="no_runner")
        return JobEnd.BLOCKED
    return _spawn(ctx, job, task, repo, role)


def _spawn(ctx: JobContext, job: Job, task: Task, repo: Repo, role: Producer) -> JobEnd:
    """Start the stage's LLM agent through the single transport and judge its artifact."""
    stopped = _stop_if_over_budget(ctx, job, task, role)
    if stopped is not None:
        return stopped
    name = task.pipeline.spec(job.stage).artifact
    path = layout.artifact_path(ctx.settings.home, task.id, name)
    feedback = None
    summary = None
    if role is Producer.DEVELOPER:
        feedback = ctx.store.rollback_feedback(task.id, job.round)
    base_note = None
    if feedback is not None:
        base_note = _start_on_the_merged_tree(repo, task)
        summary = failure_summary(ctx, job, task, feedback)
        # The summary may have spent the rest of the budget, or the job was stopped meanwhile.
        stopped = _stop_if_over_budget(ctx, job, task, role)
        if stopped is not None:
            return stopped
        if ctx.cancel.cancelled:
            return JobEnd.CANCELLED
    request = AgentRequest(
        role=role.value,
        stage=str(job.stage),
        task_id=task.id,
        round=job.round,
        worktree=Path(task.worktree),
        artifact_dir=path.parent,
        artifact_path=path,
        prompt=build_prompt(
            ctx.store,
            task,
            repo,
            role,
            job.round,
            path,
            ctx.secrets,
            feedback,
            summary,
            base_note,
        ),
        log_path=ctx.log_path(job, role.value),
        timeout_s=ctx.settings.agent_timeout_s,
    )
    # A file left by an earlier round must never pass for this round's artifact; the
    # database keeps every earlier version.
    path.unlink(missing_ok=True)
    worktree = Path(task.worktree)
    # What the agent's own commits build on (a missing worktree is the transport's to report).
    start = git.head(worktree) if worktree.is_dir() else ""
    result = call_agent(
        ctx.settings,
        request,
        cancel=ctx.cancel,
        on_start=ctx.on_start(job),
        marker=ctx.marker(job),
    )
    # Accounted first: a stopped call may have spent tokens too.
    account(ctx, job, role.value, result)
    metrics = _metrics(role, result, ctx.secrets)
    if result.kind is ErrorKind.CANCELLED:
        return JobEnd.CANCELLED
    if not result.ok:
        return _agent_failed(ctx, job, role, result, metrics)

    text = redact(path.read_text(encoding="utf-8", errors="replace"), ctx.secrets)
    try:
        message = f"{role}: {task.title} (task {task.id}, round {job.round})"
        checkout.keep_work(repo, task, start, message)
    except GitError as exc:
        failed = replace(result, kind=ErrorKind.AGENT_ERROR, message=f"cannot keep its work: {exc}")
        return _agent_failed(ctx, job, role, failed, replace(metrics, error_kind="agent_error"))
    return commit_verdict(ctx, job, task, repo, role, name, text, metrics)


def _start_on_the_merged_tree(repo: Repo, task: Task) -> str | None:
    """Bring a fix round's branch up to its base, so the developer fixes the tree that failed;
    the note for its prompt. A git fault here only costs the head start: testing merges the
    base in any case before judging."""
    try:
        update = merge_base_in(repo, task, "for a fix round", leave_conflict=True)
    except GitError as exc:
        log.warning("task %s: the fix round starts without its base merged in: %s", task.id, exc)
        return None
    return fix_round_note(repo.default_branch, update)


def _stop_if_over_budget(ctx: JobContext, job: Job, task: Task, role: Producer) -> JobEnd | None:
    """Block the task before its next agent call when a budget is spent."""
    spent = over_budget(ctx, task.id)
    if spent is None:
        return None
    reason = f"no more agent calls for task {task.id}: {spent}"
    metrics = JobMetrics(producer=role.value, outcome="blocked", error_kind="budget")
    ctx.store.block_task(job, reason, metrics, alert_kind="budget")
    return JobEnd.BLOCKED


def _agent_failed(
    ctx: JobContext, job: Job, role: Producer, result: AgentResult, metrics: JobMetrics
) -> JobEnd:
    settings = ctx.settings
    if after_agent_failure(result.kind, job.agent_failures, settings.agent_retries) is Next.RETRY:
        wait = backoff_s(
            job.agent_failures + 1, settings.defer_backoff_s, settings.defer_backoff_max_s
        )
        ctx.store.defer_job(job, wait, metrics, counted="agent")
        log.info("job %s (%s): %s, retrying in %.1fs", job.id, role, result.kind, wait)
        return JobEnd.DEFERRED
    tries = job.agent_failures + 1
    reason = redact(
        f"the {role} agent failed ({result.kind}) after {tries} attempt{'s' * (tries > 1)}: "
        f"{result.message or 'no message'}",
        ctx.secrets,
    )
    ctx.store.block_task(job, reason, metrics, alert_kind=agent_alert_kind(result.kind))
    return JobEnd.BLOCKED


def internal_error(store: Store, settings: Settings, job: Job) -> None:
    """The job failed inside the orchestrator's own code: defer it within its own budget
    (not the agent's: migration 0009), then block its task. Never raises: a failure that
    cannot be recorded is left to recovery, which re-queues the job."""
    message = "unexpected error inside orchestrator; see the worker log"
    metrics = JobMetrics(
        producer=job.producer or "orchestrator",
        outcome="internal_error",
        error_kind="internal_error",
        error_message=message,
    )
    try:
        failures = job.internal_failures
        if after_tool_error(failures, INTERNAL_ERROR_RETRIES) is Next.RETRY:
            wait = backoff_s(failures + 1, settings.defer_backoff_s, settings.defer_backoff_max_s)
            store.defer_job(job, wait, metrics, counted="internal")
        else:
            reason = f"the {job.stage} job kept failing: {message}"
            store.block_task(job, reason, metrics, alert_kind="internal_error")
    except Exception:
        log.exception("job %s: could not record the failure; recovery will re-queue it", job.id)


def _metrics(role: Producer, result: AgentResult, secrets: tuple[str, ...]) -> JobMetrics:
    return JobMetrics(
        producer=role.value,
        outcome="agent_call",
        error_kind=result.kind.value,
        error_message=redact(result.message, secrets) or None,
        exit_code=result.exit_code,
        log_path=str(result.log_path),
        backend=result.backend,
        duration_s=result.duration_s,
        **result.usage.spent(),
    )


def build_prompt(
    store: Store,
    task: Task,
    repo: Repo,
    role: Producer,
    round: int,
    artifact_path: Path,
    secrets: tuple[str, ...],
    feedback: Artifact | None = None,
    summary: str | None = None,
    base_note: str | None = None,
) -> str:
    """Render the role's prompt with the task, its earlier artifacts and, from round 2, the
    artifact that sent the task back (whole, with an optional summary above it).

    Secrets are masked in the whole prompt: a task description, a report or a review may
    quote one, and an agent must never read the orchestrator's own secrets.
    """
    artifacts = store.latest_artifacts(task.id)
    task_text = next((a.text for a in artifacts if a.name == TASK_ARTIFACT), task.title)
    shown = [
        (a.name, a.text)
        for a in artifacts
        if a.name != TASK_ARTIFACT and (feedback is None or a.name != feedback.name)
    ]
    prompt = render_prompt(
        PromptContext(
            role=role.value,
            task_id=task.id,
            round=round,
            branch=task.branch,
            base_branch=repo.default_branch,
            task_text=task_text,
            artifacts=shown,
            artifact_path=str(artifact_path),
            feedback=(feedback.name, feedback.text) if feedback else None,
            summary=summary,
            base_note=base_note,
        )
    )
    return redact(prompt, secrets)
