"""Usage accounting: every agent call, and what the pipeline spent, by task, day and stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select

from orchestrator.store import tallies
from orchestrator.store.base import StoreBase, utcnow
from orchestrator.store.schema import agent_calls, usage_tallies
from orchestrator.store.tallies import USAGE_FIGURES as FIGURES


@dataclass(frozen=True)
class AgentCall:
    """One call through the transport, as accounted."""

    task_id: str
    job_id: int | None
    call_site: str
    stage: str
    role: str
    round: int
    backend: str
    error_kind: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    turns: int | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class StageUsage:
    """What agents did and spent in one stage."""

    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float


@dataclass(frozen=True)
class UsageTally:
    """The running totals of one stage and role's agent calls (`tallies.USAGE_FIGURES`)."""

    stage: str
    role: str
    calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    measured_calls: int  # succeeded and reported their tokens
    measured_tokens: int


def usage_by_stage(usage: list[UsageTally]) -> dict[str, StageUsage]:
    """Agent calls, tokens and cost per stage."""
    by_stage: dict[str, StageUsage] = {}
    for row in usage:
        was = by_stage.get(row.stage, StageUsage(0, 0, 0, 0.0))
        by_stage[row.stage] = StageUsage(
            was.calls + row.calls,
            was.tokens_in + row.tokens_in,
            was.tokens_out + row.tokens_out,
            was.cost_usd + row.cost_usd,
        )
    return by_stage


def average_tokens(usage: list[UsageTally], roles: tuple[str, ...]) -> float | None:
    """Mean tokens (in plus out) of the successful calls of these roles that reported them;
    None if none did."""
    mine = [row for row in usage if row.role in roles]
    calls = sum(row.measured_calls for row in mine)
    return sum(row.measured_tokens for row in mine) / calls if calls else None


# Built and keyed once: every agent call writes one (store/jobs.py, `UPDATE_HELD`, says why).
_NEW_CALL = insert(agent_calls)


class UsageQueries(StoreBase):
    """Record agent calls; sum what they spent."""

    def record_agent_call(self, call: AgentCall) -> None:
        """Account one agent call (in its own transaction: it happened, whatever follows)."""
        with self._write() as conn:
            conn.execute(_NEW_CALL, {**call.__dict__, "at": utcnow()})
            tallies.count_call(
                conn,
                stage=call.stage,
                role=call.role,
                ok=call.error_kind == "ok",
                tokens_in=call.tokens_in,
                tokens_out=call.tokens_out,
                cost_usd=call.cost_usd,
            )

    def call_outcomes(self, task_id: str, call_site: str, round: int) -> list[str]:
        """How each of the task's calls at one call site in one round ended, oldest first."""
        query = (
            select(agent_calls.c.error_kind)
            .where(
                agent_calls.c.task_id == task_id,
                agent_calls.c.call_site == call_site,
                agent_calls.c.round == round,
            )
            .order_by(agent_calls.c.id)
        )
        with self._read() as conn:
            return [str(kind) for kind in conn.execute(query).scalars()]

    def task_cost(self, task_id: str) -> float:
        """What the task's agent calls cost so far (unknown costs count as 0)."""
        query = select(func.coalesce(func.sum(agent_calls.c.cost_usd), 0.0)).where(
            agent_calls.c.task_id == task_id
        )
        with self._read() as conn:
            return float(conn.execute(query).scalar_one())

    def cost_since(self, since: datetime) -> float:
        """What every agent call cost since `since`."""
        query = select(func.coalesce(func.sum(agent_calls.c.cost_usd), 0.0)).where(
            agent_calls.c.at >= since
        )
        with self._read() as conn:
            return float(conn.execute(query).scalar_one())

    def usage(self) -> list[UsageTally]:
        """The running totals of agent usage, by stage and role: a few rows however long the
        history (`usage_by_stage` and `average_tokens` read them)."""
        totals = tallies.summed(usage_tallies)
        query = select(totals.c.stage, totals.c.role, *(totals.c[f] for f in FIGURES))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            UsageTally(
                stage, role, int(calls), int(t_in), int(t_out), float(cost), int(mc), int(mt)
            )
            for stage, role, calls, t_in, t_out, cost, mc, mt in rows
        ]
