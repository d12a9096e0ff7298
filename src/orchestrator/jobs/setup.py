"""The repo's setup command: run once in each new worktree, before its first job.

Real repositories need their dependencies before their tests mean anything (typically a
script that creates `.venv` and installs the project). A failing setup is a tool error of
the job it precedes: deferred and retried, then the task is blocked with the setup's log.
It is never a test failure.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from orchestrator.errors import SpawnFailed
from orchestrator.jobs.context import JobContext, JobEnd
from orchestrator.jobs.policy import Next, after_tool_error, backoff_s
from orchestrator.proc import run_group
from orchestrator.redact import redact
from orchestrator.runners.base import suite_env
from orchestrator.store import Job, JobMetrics, Repo, Task

log = logging.getLogger(__name__)


def ensure_setup(ctx: JobContext, job: Job, task: Task, repo: Repo) -> JobEnd | None:
    """Run the setup command if this worktree has not had it; None when the job may go on."""
    if not repo.setup_command or task.setup_done_at is not None:
        return None
    worktree = Path(task.worktree)
    log_path = ctx.log_path(job, "setup")
    if not worktree.is_dir():
        return _failed(ctx, job, f"the worktree {worktree} is missing", None, log_path)
    try:
        proc = run_group(
            shlex.split(repo.setup_command),
            cwd=worktree,
            env=suite_env(worktree),
            log_path=log_path,
            timeout=ctx.settings.setup_timeout_s,
            grace=ctx.settings.kill_grace_s,
            cancel=ctx.cancel,
            on_start=ctx.on_start(job),
            marker=ctx.marker(job),
            secrets=ctx.secrets,
        )
    except SpawnFailed as exc:
        return _failed(ctx, job, str(exc), None, log_path)
    if proc.cancelled:
        return JobEnd.CANCELLED
    if proc.ok:
        ctx.store.mark_setup_done(task.id)
        log.info("task %s: setup command done in %.1fs", task.id, proc.duration_s)
        return None
    how = "timed out" if proc.timed_out else f"exited {proc.exit_code}"
    last = (proc.tail or proc.head).strip().splitlines()[-5:]
    reason = f"the setup command `{repo.setup_command}` {how}: " + " / ".join(last)
    return _failed(ctx, job, reason, proc.exit_code, log_path)


def _failed(
    ctx: JobContext, job: Job, reason: str, exit_code: int | None, log_path: Path
) -> JobEnd:
    reason = redact(reason, ctx.secrets)
    metrics = JobMetrics(
        producer=job.producer or "setup",
        outcome="setup_failed",
        error_kind="setup_failed",
        error_message=reason,
        exit_code=exit_code,
        log_path=str(log_path),
    )
    settings = ctx.settings
    if after_tool_error(job.infra_failures, settings.setup_retries) is Next.RETRY:
        wait = backoff_s(
            job.infra_failures + 1, settings.defer_backoff_s, settings.defer_backoff_max_s
        )
        ctx.store.defer_job(job, wait, metrics, counted="infra")
        log.warning("task %s: %s; retrying in %.1fs", job.task_id, reason, wait)
        return JobEnd.DEFERRED
    message = f"{reason} (log: {log_path}); fix the repo or its setup, then: orch task resume"
    ctx.store.block_task(job, message, metrics, alert_kind="setup_failed")
    return JobEnd.BLOCKED
