"""Claiming jobs: which runnable job a worker takes next, and the serial gate it may need.

A claim runs in a transaction of its own (`JobQueries.claim_jobs`) or at the end of the
verdict that freed the slot (`LifecycleQueries.finish_job`): then the next job starts without
a transaction of its own, and a job the verdict queued and claimed itself wakes nobody.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Interval,
    Select,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError

from orchestrator.pipeline.stages import SERIAL_STAGES, Stage, TaskState
from orchestrator.store.base import utcnow
from orchestrator.store.records import Job, JobStatus
from orchestrator.store.schema import jobs, repos, tasks

# The stages whose end may let another task of the repo take its serial gate: the gated
# stages themselves, and testing (an older task in testing goes first: `_acquire_gate`).
HOLDS_UP_GATES = SERIAL_STAGES | {Stage.TESTING}


def keeps_gate(state: TaskState, stage: str) -> bool:
    """A task moving to `stage` in `state` keeps the repo's serial gate, if it holds it."""
    return state is TaskState.ACTIVE and stage in SERIAL_STAGES


def frees_gate(from_stage: str, state: TaskState, stage: str) -> bool:
    """A task moving from `from_stage` may let another task take the serial gate: one
    waiting for it must hear of it now, not at the next fallback poll."""
    return not keeps_gate(state, stage) and from_stage in HOLDS_UP_GATES


# How many more candidates than free slots a claim looks at, so that jobs waiting for a
# serial gate do not hide runnable ones behind them.
_CLAIM_LOOKAHEAD = 32


def _unindexed(column: ColumnElement[str]) -> ColumnElement[str]:
    """`column`'s value in a form no index answers (it with '' appended): for a condition
    checked on a row found by its key, never used to find rows. Under statistics taken when
    few tasks or jobs were live, as a long-lived installation's may be, PostgreSQL's planner
    otherwise reads every live row through the index of that column for each one it wants."""
    return column.concat(literal_column("''"))


# A runnable job's task must be active, checked on the task row its job points to: through
# the index of states, a claim read every active task again for each runnable job (4.7 ms
# at 100,000 stored tasks and 200 active, against 0.7 ms through the key).
_ACTIVE_TASK = _unindexed(tasks.c.state) == TaskState.ACTIVE


def runnable(now: datetime | ColumnElement[datetime]):  # type: ignore[no-untyped-def]
    """A job any worker may take at `now`: queued, or deferred and due."""
    return or_(
        jobs.c.status == JobStatus.QUEUED,
        and_(jobs.c.status == JobStatus.DEFERRED, jobs.c.not_before <= now),
    )


def self_deploy_job() -> ColumnElement[bool]:
    """The deploy of a repo marked self, which only the supervised service runs."""
    return and_(jobs.c.stage == Stage.DEPLOY, repos.c.is_self.is_(True))


@dataclass(frozen=True)
class Claimant:
    """Who claims jobs, and for how long: a worker on a host, with its lease. Only the
    supervised service (`self_deploy`) takes the deploy of a repo marked self: only it can
    restart on the merged code."""

    worker_id: str
    host: str
    lease_s: float
    self_deploy: bool = False


def claim(conn: Connection, claimant: Claimant, limit: int) -> list[Job]:
    """Take up to `limit` runnable jobs in the caller's transaction, respecting each repo's
    serial gate (its own transaction, or the verdict's that freed the slot: store/lifecycle.py).

    Older tasks go first, so that a task's next stage starts the moment its job ends
    instead of queueing behind every newer task's first stage.

    On PostgreSQL, several workers (and a worker's slots handing off) claim at once: the
    candidates are read without a lock, and each is taken by an update of that one row
    under `FOR UPDATE SKIP LOCKED`, so no job is taken twice, a claim never waits for
    another, and it locks only what it takes (locking every candidate would push a
    concurrent claim past the oldest tasks' jobs). Each claim bumps the job's attempt.
    """
    claimed: list[Job] = []
    pg = conn.dialect.name == "postgresql"
    if pg and limit == 1:  # every hand-off: one statement, unless a serial gate is in play
        lease = {
            "c_worker": claimant.worker_id,
            "c_host": claimant.host,
            "c_lease_s": timedelta(seconds=claimant.lease_s),
        }
        first = conn.execute(_take_oldest(claimant.self_deploy), lease).first()
        if first is None:
            return claimed  # nothing runnable
        if first.id is not None:
            return [Job.from_row(first)]
        # The oldest job needs its repo's serial gate, or a concurrent claim holds it: the
        # full claim below decides.
    here = utcnow()
    limits = {"limit": limit + _CLAIM_LOOKAHEAD, "now": here}
    rows = conn.execute(_candidates(pg, claimant.self_deploy), limits).all()
    now = rows[0].now.astimezone(UTC) if pg and rows else here
    taking = {
        "c_worker": claimant.worker_id,
        "c_host": claimant.host,
        "c_now": now,
        "c_lease": now + timedelta(seconds=claimant.lease_s),
    }
    for row in rows:
        if len(claimed) == limit:
            break
        needs_gate = row.stage in SERIAL_STAGES and row.gate_acquired_at is None
        if needs_gate and not _acquire_gate(conn, row, now):
            continue
        job = conn.execute(_TAKE, {**taking, "c_id": row.id}).first()
        if job is not None:
            claimed.append(Job.from_row(job))
    return claimed


@functools.cache
def _candidates(pg: bool, self_deploy: bool) -> Select[tuple[Any, ...]]:
    """The runnable jobs, oldest task first (built and keyed once for each kind of claim).

    The database's clock on PostgreSQL, read by the query itself: one round trip less than
    asking first, on the path of every hand-off. The statement's time, not the transaction's:
    a claim in a verdict's transaction starts after that job ended.
    """
    clock: ColumnElement[datetime] = func.statement_timestamp() if pg else bindparam("now")
    columns: list[Any] = [
        jobs.c.id,
        jobs.c.task_id,
        jobs.c.stage,
        tasks.c.repo_id,
        tasks.c.gate_acquired_at,
        tasks.c.created_at,
        *([func.statement_timestamp().label("now")] if pg else []),
    ]
    return _oldest_first(columns, clock, self_deploy).limit(bindparam("limit"))


def _oldest_first(
    columns: list[Any], clock: ColumnElement[datetime], self_deploy: bool
) -> Select[tuple[Any, ...]]:
    """`columns` of the jobs runnable at `clock`, oldest task first (both claims)."""
    runnable_jobs = (
        select(*columns)
        .join(tasks, tasks.c.id == jobs.c.task_id)
        .join(repos, repos.c.id == tasks.c.repo_id)
        .where(runnable(clock), _ACTIVE_TASK)
        .order_by(tasks.c.created_at, tasks.c.id, jobs.c.id)
    )
    return runnable_jobs if self_deploy else runnable_jobs.where(not_(self_deploy_job()))


def _taken(now: ColumnElement[datetime], lease_ends: ColumnElement[datetime]) -> dict[str, Any]:
    """What a claim sets on the job it takes: running, its attempt bumped, held by the
    claimant (`c_worker`, `c_host`) from `now` to `lease_ends`, no process yet."""
    return {
        "status": JobStatus.RUNNING,
        "attempt": jobs.c.attempt + 1,
        "worker_id": bindparam("c_worker"),
        "host": bindparam("c_host"),
        "started_at": now,
        "heartbeat_at": now,
        "lease_expires_at": lease_ends,
        "pid": None,
        "pgid": None,
        "proc_started_at": None,
        "marker": None,
    }


# One candidate taken, if it is still waiting and no concurrent claim holds it (SQLite,
# whose writers take turns, renders no lock). Built once, as `_candidates`.
_TAKE = (
    update(jobs)
    .where(
        jobs.c.id.in_(
            select(jobs.c.id)
            .where(
                jobs.c.id == bindparam("c_id"),
                jobs.c.status.in_([JobStatus.QUEUED, JobStatus.DEFERRED]),
            )
            .with_for_update(skip_locked=True)
        )
    )
    .values(_taken(bindparam("c_now"), bindparam("c_lease")))
    .returning(jobs)
)


@functools.cache
def _take_oldest(self_deploy: bool) -> Select[tuple[Any, ...]]:
    """PostgreSQL's claim of one job in one statement: the oldest runnable job is taken if it
    needs no serial gate and no concurrent claim holds it (`FOR UPDATE SKIP LOCKED` on that
    row alone). Otherwise nothing is locked and the row says so (no `id`): `claim` decides
    as it does for several, and a job it does not take is never left locked, where a
    concurrent claim would pass it over. No row: nothing runnable. Built and keyed once."""
    # The gated stages one by one, not `in_`: an IN list is rendered at each execution.
    gated_stage = or_(*(jobs.c.stage == stage for stage in sorted(SERIAL_STAGES)))
    needs_gate = and_(gated_stage, tasks.c.gate_acquired_at.is_(None))
    clock = func.statement_timestamp()
    oldest = _oldest_first([jobs.c.id, needs_gate.label("gated")], clock, self_deploy).limit(1)
    first = oldest.cte("oldest")
    # The job by its key: through the index of live jobs its status matched, the lock read
    # every live job to find it.
    ungated = select(first.c.id).where(not_(first.c.gated)).scalar_subquery()
    status = _unindexed(jobs.c.status)
    held = (
        select(jobs.c.id)
        .where(
            jobs.c.id == ungated,
            or_(status == JobStatus.QUEUED, status == JobStatus.DEFERRED),
        )
        .with_for_update(of=jobs, skip_locked=True)
        .cte("held")
    )
    lease_ends = clock + cast(bindparam("c_lease_s"), Interval())
    taken = (
        update(jobs)
        .where(jobs.c.id == held.c.id)
        .values(_taken(clock, lease_ends))
        .returning(*jobs.c)
        .cte("taken")
    )
    return select(first.c.gated, *taken.c).select_from(first.outerjoin(taken, true()))


def _acquire_gate(conn: Connection, row: Any, now: datetime) -> bool:
    """Take the repo's serial gate for the candidate `row`'s task, if it is its turn.

    The merge queue is first come, first served by task age: an older task of the repo
    still in testing goes first. The test-runner tests each task on top of the older
    ones ahead of it (`workspace.merging.speculate`); a younger one that merged first
    would make every one of those test runs stale.
    """
    task_id, repo_id = row.task_id, row.repo_id
    holder = conn.execute(
        select(tasks.c.id).where(tasks.c.repo_id == repo_id, tasks.c.gate_acquired_at.is_not(None))
    ).first()
    if holder is not None:
        return bool(holder.id == task_id)
    older_in_testing = conn.execute(
        select(tasks.c.id)
        .where(
            tasks.c.repo_id == repo_id,
            tasks.c.state == TaskState.ACTIVE,
            tasks.c.stage == Stage.TESTING,
            or_(
                tasks.c.created_at < row.created_at,
                and_(tasks.c.created_at == row.created_at, tasks.c.id < task_id),
            ),
        )
        .limit(1)
    ).first()
    if older_in_testing is not None:
        return False
    try:
        with conn.begin_nested():  # a concurrent claim may take it first: unique index
            conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.gate_acquired_at.is_(None))
                .values(gate_acquired_at=now)
            )
    except IntegrityError:
        return False
    return True
