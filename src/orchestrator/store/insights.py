"""Read models for the API and the dashboard: usage, determinization, runners, changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, union_all

from orchestrator.pipeline.stages import (
    FALLBACK_ROLES,
    LLM_ROLES,
    LLM_STAGES,
    RUNNER_STAGES,
    Producer,
    Stage,
    TaskState,
)
from orchestrator.store.records import Job
from orchestrator.store.schema import (
    alerts,
    events,
    jobs,
    tasks,
    verdict_tallies,
)
from orchestrator.store.tallies import summed
from orchestrator.store.usage import UsageQueries, UsageTally

# Runner verdicts on these stages replaced a call to the LLM tester or deployer.
# The stages a runner produces with an LLM role as its fallback (from the stage table).
FALLBACK_STAGES = tuple(LLM_STAGES[role] for role in FALLBACK_ROLES)


@dataclass(frozen=True)
class Determinization:
    """Who produced the verdicts, and what the agents spent."""

    verdicts_by_producer: dict[str, int]
    verdicts_by_stage: dict[str, dict[str, int]]  # stage -> {"code": n, "llm": m}
    llm_calls_avoided: int  # runner verdicts on stages with an LLM fallback
    agent_calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: float

    @property
    def llm_calls_avoided_by_stage(self) -> dict[str, int]:
        """The LLM calls avoided in each stage with an LLM fallback: its runner's verdicts."""
        return {
            stage.value: self.verdicts_by_stage.get(stage, {}).get("code", 0)
            for stage in FALLBACK_STAGES
        }

    @property
    def deterministic(self) -> int:
        """Verdicts produced by code."""
        return sum(n for p, n in self.verdicts_by_producer.items() if Producer(p) not in LLM_ROLES)

    @property
    def by_llm(self) -> int:
        """Verdicts produced by an LLM agent."""
        return sum(n for p, n in self.verdicts_by_producer.items() if Producer(p) in LLM_ROLES)


@dataclass(frozen=True)
class RunnerActivity:
    """A runner's running and deferred jobs and its latest outcomes."""

    running: list[Job]
    deferred: list[Job]
    last: list[tuple[Job, str | None]]  # (finished job, the verdict it produced)


class InsightQueries(UsageQueries):
    """Aggregates for /status, /queue, /metrics and the dashboard."""

    def determinization(self, usage: list[UsageTally] | None = None) -> Determinization:
        """Verdicts by producer, LLM calls avoided, and the agents' usage (from the running
        totals: a few rows however long the history; `usage` when already read)."""
        llm = [role.value for role in LLM_ROLES]
        totals = summed(verdict_tallies)
        query = select(totals.c.producer, totals.c.stage, totals.c.verdicts)
        with self._read() as conn:
            rows = conn.execute(query).all()
        usage = self.usage() if usage is None else usage
        by_producer: dict[str, int] = {}
        by_stage: dict[str, dict[str, int]] = {}
        avoided = 0
        for producer, stage, count in rows:
            by_producer[producer] = by_producer.get(producer, 0) + count
            kind = "llm" if producer in llm else "code"
            per_stage = by_stage.setdefault(stage, {"code": 0, "llm": 0})
            per_stage[kind] += count
            if stage in FALLBACK_STAGES and kind == "code":
                avoided += count
        return Determinization(
            by_producer,
            by_stage,
            avoided,
            sum(row.calls for row in usage),
            sum(row.tokens_in for row in usage),
            sum(row.tokens_out for row in usage),
            sum(row.cost_usd for row in usage),
        )

    def runner_outcomes(self, last: int = 5) -> dict[Producer, list[tuple[Job, str | None]]]:
        """Each runner's latest finished jobs, newest first, with the verdict each produced:
        one short backward scan of the (producer, id) index per runner, in one query."""
        latest = [
            select(jobs.c.id)
            .where(jobs.c.producer == producer, jobs.c.finished_at.is_not(None))
            .order_by(jobs.c.id.desc())
            .limit(last)
            .subquery()
            for producer in RUNNER_STAGES
        ]
        recent = (
            select(jobs, events.c.verdict)
            .outerjoin(events, events.c.job_id == jobs.c.id)
            .where(jobs.c.id.in_(union_all(*(select(ids.c.id) for ids in latest))))
            .order_by(jobs.c.id.desc())
        )
        with self._read() as conn:
            rows = conn.execute(recent).all()
        outcomes: dict[Producer, list[tuple[Job, str | None]]] = {p: [] for p in RUNNER_STAGES}
        for job, row in zip(Job.from_rows(rows), rows, strict=True):
            outcomes[Producer(row.producer)].append((job, row.verdict))
        return outcomes

    def job_durations(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(producer, outcome) -> (finished jobs, seconds they took), for the metrics."""
        query = (
            select(jobs.c.producer, jobs.c.outcome, func.count(), func.sum(jobs.c.duration_s))
            .where(jobs.c.finished_at.is_not(None), jobs.c.producer.is_not(None))
            .group_by(jobs.c.producer, jobs.c.outcome)
        )
        with self._read() as conn:
            return {
                (producer, outcome or "none"): (int(count), float(total or 0.0))
                for producer, outcome, count, total in conn.execute(query)
            }

    def count_tasks(
        self,
        *,
        state: TaskState | None = None,
        stage: Stage | None = None,
        repo_id: int | None = None,
    ) -> int:
        """How many tasks match the filters."""
        query = select(func.count()).select_from(tasks)
        if state is not None:
            query = query.where(tasks.c.state == state)
        if stage is not None:
            query = query.where(tasks.c.stage == stage)
        if repo_id is not None:
            query = query.where(tasks.c.repo_id == repo_id)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def change_token(self) -> str:
        """A string that changes whenever anything a page shows may have changed."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    select(func.max(events.c.id)).scalar_subquery(),
                    select(func.max(jobs.c.id)).scalar_subquery(),
                    select(func.max(jobs.c.started_at)).scalar_subquery(),
                    select(func.max(jobs.c.finished_at)).scalar_subquery(),
                    select(func.max(tasks.c.updated_at)).scalar_subquery(),
                    select(func.max(alerts.c.id)).scalar_subquery(),
                    select(func.max(alerts.c.acknowledged_at)).scalar_subquery(),
                )
            ).one()
        return "|".join("" if value is None else _text(value) for value in row)


def _text(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
