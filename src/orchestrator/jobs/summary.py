"""A7, the failure summary: an optional LLM note on the report that sent a task back.

It is hybrid and strictly off the control path: it never changes a verdict (the gate has
already moved the task), the developer always gets the report whole, and when the switch is
off (the default), the call fails or the budget is spent, the prompt simply has no note.
Nothing it does can fail the developer's job: any error is logged and means "no note".

It is called at most once per round: a developer retry of the same round reuses the note
its first attempt got (the file the summarizer wrote), or goes without one if that call
failed, instead of paying for the same note again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.jobs.accounting import CALL_SITE_OF_ROLE, account, over_budget
from orchestrator.jobs.context import JobContext
from orchestrator.prompts import SUMMARIZER, render_summary_prompt
from orchestrator.redact import redact
from orchestrator.store import Artifact, Job, Task
from orchestrator.transport import AgentRequest, ErrorKind, call_agent
from orchestrator.workspace import layout

log = logging.getLogger(__name__)

# A note on a report needs minutes, not the half hour a developer may take.
SUMMARY_TIMEOUT_S = 300.0


def summary_artifact(round: int) -> str:
    """The note's file for one round: a retry on another machine never reads an older one."""
    return f"12-failure-summary-r{round}.md"


def failure_summary(ctx: JobContext, job: Job, task: Task, report: Artifact) -> str | None:
    """The note to put above `report` in the developer's prompt, or None; never raises."""
    if not ctx.settings.failure_summary_enabled:
        return None
    try:
        return _note_of_the_round(ctx, job, task, report)
    except Exception:
        log.warning(
            "task %s: no failure summary (it failed inside orchestrator)", task.id, exc_info=True
        )
        return None


def _note_of_the_round(ctx: JobContext, job: Job, task: Task, report: Artifact) -> str | None:
    path = layout.artifact_path(ctx.settings.home, task.id, summary_artifact(job.round))
    earlier = [
        kind
        for kind in ctx.store.call_outcomes(task.id, CALL_SITE_OF_ROLE[SUMMARIZER], job.round)
        if kind != ErrorKind.CANCELLED
    ]
    if earlier:
        ok = ErrorKind.OK in earlier
        return _read_note(path, ctx.secrets) if ok and path.is_file() else None
    if over_budget(ctx, task.id) is not None:
        return None
    path.unlink(missing_ok=True)
    request = AgentRequest(
        role=SUMMARIZER,
        stage=str(job.stage),
        task_id=task.id,
        round=job.round,
        worktree=layout.worktree_dir(ctx.settings.home, task.id),
        artifact_dir=path.parent,
        artifact_path=path,
        prompt=redact(render_summary_prompt(report.name, report.text, str(path)), ctx.secrets),
        log_path=ctx.log_path(job, SUMMARIZER),
        timeout_s=min(ctx.settings.agent_timeout_s, SUMMARY_TIMEOUT_S),
    )
    # Recorded like the job's own agent, so that the leftover sweep finds it if we die.
    result = call_agent(
        ctx.settings, request, cancel=ctx.cancel, on_start=ctx.on_start(job), marker=ctx.marker(job)
    )
    account(ctx, job, SUMMARIZER, result)
    if not result.ok:
        log.info("task %s: no failure summary (%s: %s)", task.id, result.kind, result.message)
        return None
    return _read_note(path, ctx.secrets)


def _read_note(path: Path, secrets: tuple[str, ...]) -> str | None:
    note = redact(path.read_text(encoding="utf-8", errors="replace"), secrets).strip()
    return note or None
