"""A finished job's verdict, and on PostgreSQL its rows in one statement.

A verdict ends its job, writes its artifact and event, moves its task, queues the task's
next job and adds to the running totals. Sent one by one, those are five round trips between
a job's end and the next job's start, and at eight jobs on two cores each one is a wait for
the server, then for a core and the interpreter. On PostgreSQL they are one statement, a
writing WITH in which each write happens only if the one before it matched: the job's end
only under the fencing rule, the task's move only after it and only from the stage the job
ran in, the rows of the move only after that. SQLite, which has no writing WITH, writes them
one by one (store/lifecycle.py), with the same checks and the same errors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, exists, func, insert, literal, select, update

from orchestrator.errors import StaleState
from orchestrator.pipeline.stages import Producer, TaskState
from orchestrator.pipeline.transitions import Judgement, Transition
from orchestrator.store.base import JOBS_CHANNEL, note_announced, utcnow
from orchestrator.store.claims import frees_gate, keeps_gate
from orchestrator.store.jobs import held
from orchestrator.store.records import Job, JobMetrics, JobStatus
from orchestrator.store.schema import (
    artifacts,
    events,
    jobs,
    task_tallies,
    tasks,
    verdict_tallies,
)

_METRICS = tuple(JobMetrics.__dataclass_fields__)

# A task a job's end may move: still active, in the stage the job ran in (`move_id`,
# `move_from`); anything else moved it meanwhile. Both ways of writing a verdict use it.
STILL_IN_STAGE = (
    tasks.c.id == bindparam("move_id"),
    tasks.c.state == TaskState.ACTIVE,
    tasks.c.stage == bindparam("move_from"),
)


def move_reason(state: TaskState, reason: str | None) -> str | None:
    """The reason a task keeps after a move: only one that stops it has one."""
    return reason if state is not TaskState.ACTIVE else None


@dataclass(frozen=True)
class Verdict:
    """A finished job's verdict and everything it changes."""

    job: Job
    producer: Producer
    artifact_name: str
    artifact_text: str
    verdict: str  # the value the gate read, e.g. "PASS" or "CHANGES_REQUESTED"
    transition: Transition
    metrics: JobMetrics
    alert_kind: str = "verdict"
    extra_alert: tuple[str, str] | None = None  # (kind, message), e.g. an infra failure

    @classmethod
    def of(
        cls,
        job: Job,
        producer: Producer,
        name: str,
        text: str,
        judged: Judgement,
        metrics: JobMetrics,
        extra_alert: tuple[str, str] | None = None,
    ) -> Verdict:
        """The verdict a judged artifact makes (`pipeline.transitions.judge`)."""
        return cls(
            job,
            producer,
            name,
            text,
            judged.gate.verdict,
            judged.move,
            metrics,
            judged.alert_kind,
            extra_alert,
        )


def write_verdict(conn: Connection, verdict: Verdict, *, announced: bool) -> int | None:
    """The verdict's rows in one statement (PostgreSQL); the id of the job it queued, if any.
    The workers are woken when the move frees a gate, or when it queues a job and
    `announced` (the caller will not claim that job itself). Raises StaleState, as the
    writes one by one do, when the job or the task moved on meanwhile."""
    job, move = verdict.job, verdict.transition
    queues = move.state is TaskState.ACTIVE
    keeps = keeps_gate(move.state, move.stage)
    announces = frees_gate(job.stage, move.state, move.stage) or (queues and announced)
    at = utcnow()
    values: dict[str, Any] = {
        "held_id": job.id,
        "held_attempt": job.attempt,
        "end_status": JobStatus.DONE,
        "end_at": at,
        **{f"m_{key}": getattr(verdict.metrics, key) for key in _METRICS},
        "move_id": job.task_id,
        "move_from": job.stage,
        "move_stage": move.stage,
        "move_state": move.state,
        "move_round": move.round,
        "move_reason": move_reason(move.state, move.alert),
        "at": at,
        "job_id": job.id,
        "job_round": job.round,
        "producer": verdict.producer,
        "event_to": move.event_to,
        "verdict": verdict.verdict,
        "artifact_name": verdict.artifact_name,
        "artifact_text": verdict.artifact_text,
    }
    row = conn.execute(_statement(keeps, queues, announces), values).one()
    if not row.ended:
        # Cancelled, reclaimed by another worker, or already finished: this attempt's
        # result must not count (the fencing rule).
        raise StaleState(f"job {job.id} attempt {job.attempt} is no longer current")
    if not row.moved:
        raise StaleState(f"task {job.task_id} left {job.stage} before the job ended")
    if announces:
        note_announced(conn)
    return int(row.queued) if queues else None


@functools.cache
def _statement(keeps_gate: bool, queues: bool, announces: bool) -> Select[Any]:
    """The verdict's writing WITH for one kind of move, built and keyed once (store/jobs.py,
    `UPDATE_HELD`, says why). Each write selects from the one before it, so a write that
    matched nothing stops the rest; the statement returns what matched."""
    ended = (
        update(jobs)
        .where(held(bindparam("held_id"), bindparam("held_attempt")))
        .values(
            status=bindparam("end_status"),
            finished_at=bindparam("end_at"),
            lease_expires_at=None,
            **{key: bindparam(f"m_{key}", type_=jobs.c[key].type) for key in _METRICS},
        )
        .returning(jobs.c.id)
        .cte("ended")
    )
    moving: dict[str, Any] = {
        "stage": bindparam("move_stage"),
        "state": bindparam("move_state"),
        "round": bindparam("move_round"),
        "reason": bindparam("move_reason", type_=tasks.c.reason.type),
        "updated_at": bindparam("at"),
    }
    if not keeps_gate:
        moving["gate_acquired_at"] = None
    moved = (
        update(tasks)
        .where(*STILL_IN_STAGE, exists(select(ended.c.id)))
        .values(moving)
        .returning(tasks.c.id)
        .cte("moved")
    )

    def typed(name: str, column: Any) -> Any:
        return bindparam(name, type_=column.type)

    shared = {
        "task_id": moved.c.id,
        "job_id": typed("job_id", events.c.job_id),
        "round": typed("job_round", events.c.round),
        "producer": typed("producer", events.c.producer),
    }
    artifact = _insert_from(
        artifacts,
        {
            **shared,
            "name": typed("artifact_name", artifacts.c.name),
            "text": typed("artifact_text", artifacts.c.text),
            "created_at": typed("at", artifacts.c.created_at),
        },
    ).cte("artifact")
    event = _insert_from(
        events,
        {
            **shared,
            "from_stage": typed("move_from", events.c.from_stage),
            "to_stage": typed("event_to", events.c.to_stage),
            "verdict": typed("verdict", events.c.verdict),
            "at": typed("at", events.c.at),
        },
    ).cte("event")
    # The running totals' additions (store/tallies.py): the verdict, and the task's state
    # when the move ends it. An insert locks nothing, so it may come before the commit.
    counted = [
        _insert_from(
            verdict_tallies,
            {
                "producer": typed("producer", verdict_tallies.c.producer),
                "stage": typed("move_from", verdict_tallies.c.stage),
                "verdicts": literal(1, verdict_tallies.c.verdicts.type),
            },
            moved,
        ).cte("verdict_counted")
    ]
    if not queues:  # the task leaves the active tasks
        counted += [
            _insert_from(
                task_tallies,
                {"state": state, "tasks": literal(n, task_tallies.c.tasks.type)},
                moved,
            ).cte(name)
            for name, state, n in [
                ("left_active", literal(TaskState.ACTIVE, task_tallies.c.state.type), -1),
                ("entered", typed("move_state", task_tallies.c.state), 1),
            ]
        ]
    columns: list[Any] = [
        select(func.count()).select_from(ended).scalar_subquery().label("ended"),
        select(func.count()).select_from(moved).scalar_subquery().label("moved"),
    ]
    if queues:
        queued = _insert_from(
            jobs,
            {
                "task_id": moved.c.id,
                "stage": typed("move_stage", jobs.c.stage),
                "round": typed("move_round", jobs.c.round),
                "status": literal(JobStatus.QUEUED, jobs.c.status.type),
                "created_at": typed("at", jobs.c.created_at),
            },
        )
        queued_cte = queued.returning(jobs.c.id).cte("queued")
        columns.append(select(queued_cte.c.id).scalar_subquery().label("queued"))
    if announces:  # sent at commit, as NOTIFY is, and not at all on a rollback
        columns.append(func.pg_notify(JOBS_CHANNEL, "").label("announced"))
    return select(*columns).add_cte(artifact, event, *counted)


def _insert_from(table: Any, values: dict[str, Any], moved: Any = None) -> Any:
    """An insert of one row into `table` for each task `moved` (none, or the one); `moved`
    is named when no value reads it."""
    rows = select(*values.values())
    if moved is not None:
        rows = rows.select_from(moved)
    return insert(table).from_select(list(values), rows)
