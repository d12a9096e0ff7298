"""Pure decisions about failed jobs: retry after a backoff, or stop and ask a person."""

from __future__ import annotations

from enum import StrEnum

from orchestrator.transport.types import ErrorKind


class Next(StrEnum):
    """What to do with a job that did not produce a verdict."""

    RETRY = "retry"  # defer it, then run it again
    GIVE_UP = "give_up"  # the budget is spent, or retrying cannot help


def backoff_s(failures: int, first_s: float, cap_s: float) -> float:
    """The wait before the next attempt after `failures` failures: first, doubling, capped."""
    if failures < 1:
        return 0.0
    return min(cap_s, first_s * float(2 ** min(failures - 1, 32)))


def after_agent_failure(kind: ErrorKind, failures_before: int, retries: int) -> Next:
    """An agent call failed: retry it within `ORCH_AGENT_RETRIES`, unless that cannot help."""
    if not kind.retryable or failures_before >= retries:
        return Next.GIVE_UP
    return Next.RETRY


def agent_alert_kind(kind: ErrorKind) -> str:
    """The alert a blocking agent failure raises: `agent_timeout`, `agent_auth`, ... and
    `agent_error` (not `agent_agent_error`)."""
    return kind.value if kind.value.startswith("agent_") else f"agent_{kind.value}"


def after_tool_error(failures_before: int, budget: int) -> Next:
    """A runner could not run its suite: defer it within its infra-retry budget."""
    return Next.RETRY if failures_before < budget else Next.GIVE_UP


def budget_problem(
    task_cost: float,
    day_cost: float,
    task_budget: float | None,
    daily_budget: float | None,
) -> str | None:
    """Why no more agent calls may be made, or None while both budgets allow it."""
    if task_budget is not None and task_cost >= task_budget:
        return (
            f"the task's agents have spent ${task_cost:.2f} of its ${task_budget:.2f} budget "
            "(ORCH_TASK_BUDGET_USD)"
        )
    if daily_budget is not None and day_cost >= daily_budget:
        return (
            f"agents have spent ${day_cost:.2f} today (UTC) of the ${daily_budget:.2f} daily "
            "budget (ORCH_DAILY_BUDGET_USD)"
        )
    return None
