"""A7, the failure summary: an optional LLM note on the report that sent a task back.

It is hybrid and strictly off the control path: it never changes a verdict (the gate has
already moved the task), the developer always gets the report whole, and when the switch is
off (the default), the call fails or the budget is spent, the prompt simply has no note.
"""

from __future__ import annotations

import logging

from orchestrator.jobs.accounting import account, over_budget
from orchestrator.jobs.context import JobContext
from orchestrator.prompts import SUMMARIZER, render_summary_prompt
from orchestrator.redact import redact
from orchestrator.store import Artifact, Job, Task
from orchestrator.transport import AgentRequest, call_agent
from orchestrator.workspace import layout

log = logging.getLogger(__name__)

SUMMARY_ARTIFACT = "12-failure-summary.md"
# A note on a report needs minutes, not the half hour a developer may take.
SUMMARY_TIMEOUT_S = 300.0


def failure_summary(ctx: JobContext, job: Job, task: Task, report: Artifact) -> str | None:
    """The note to put above `report` in the developer's prompt, or None."""
    if not ctx.settings.failure_summary_enabled or over_budget(ctx, task.id) is not None:
        return None
    path = layout.artifact_path(ctx.settings.home, task.id, SUMMARY_ARTIFACT)
    path.unlink(missing_ok=True)
    request = AgentRequest(
        role=SUMMARIZER,
        stage=job.stage.value,
        task_id=task.id,
        round=job.round,
        worktree=layout.worktree_dir(ctx.settings.home, task.id),
        artifact_dir=path.parent,
        artifact_path=path,
        prompt=render_summary_prompt(report.name, report.text, str(path)),
        log_path=ctx.log_path(job, SUMMARIZER),
        timeout_s=min(ctx.settings.agent_timeout_s, SUMMARY_TIMEOUT_S),
    )
    result = call_agent(ctx.settings, request, cancel=ctx.cancel, marker=ctx.marker(job))
    account(ctx, job, SUMMARIZER, result)
    if not result.ok:
        log.info("task %s: no failure summary (%s: %s)", task.id, result.kind, result.message)
        return None
    note = redact(path.read_text(encoding="utf-8", errors="replace"), ctx.secrets).strip()
    return note or None
