"""Every agent call is accounted, and budgets are checked before the next one."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.governance.call_sites import CALL_SITES
from orchestrator.jobs.context import JobContext
from orchestrator.jobs.policy import budget_problem
from orchestrator.store import AgentCall, Job
from orchestrator.transport import AgentResult

CALL_SITE_OF_ROLE = {site.role: site.id for site in CALL_SITES}


def account(ctx: JobContext, job: Job, role: str, result: AgentResult) -> None:
    """Record one agent call with the tokens and cost its backend reported."""
    ctx.store.record_agent_call(
        AgentCall(
            task_id=job.task_id,
            job_id=job.id,
            call_site=CALL_SITE_OF_ROLE[role],
            stage=str(job.stage),
            role=role,
            round=job.round,
            backend=result.backend,
            error_kind=result.kind.value,
            duration_s=result.duration_s,
            **result.usage.spent(),
        )
    )


def over_budget(ctx: JobContext, task_id: str) -> str | None:
    """Why the task may not call an agent now (a budget is spent), or None."""
    settings = ctx.settings
    if settings.task_budget_usd is None and settings.daily_budget_usd is None:
        return None
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return budget_problem(
        ctx.store.task_cost(task_id),
        ctx.store.cost_since(midnight),
        settings.task_budget_usd,
        settings.daily_budget_usd,
    )
