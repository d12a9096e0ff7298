"""Queries on jobs: claiming, leases, deferral and recovery.

Every change to a running job is conditional on its status and attempt (the fencing token):
a worker that lost its job, to a cancel or to another worker, cannot change it any more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from orchestrator.errors import StaleState
from orchestrator.pipeline.stages import SERIAL_STAGES, Stage, TaskState
from orchestrator.store.base import StoreBase, announce, db_now, utcnow
from orchestrator.store.records import LIVE_JOB_STATUSES, Job, JobMetrics, JobStatus
from orchestrator.store.schema import jobs, repos, tasks

# How many more candidates than free slots a claim looks at, so that jobs waiting for a
# serial gate do not hide runnable ones behind them.
_CLAIM_LOOKAHEAD = 32


# What failed, each with a budget of its own: a tool or service the job needs, the agent,
# or the orchestrator's own code (one never spends another's retries).
Failure = Literal["infra", "agent", "internal"]
FAILURE_COUNTERS = {
    "infra": jobs.c.infra_failures,
    "agent": jobs.c.agent_failures,
    "internal": jobs.c.internal_failures,
}


def _runnable(now: datetime | ColumnElement[datetime]):  # type: ignore[no-untyped-def]
    return or_(
        jobs.c.status == JobStatus.QUEUED,
        and_(jobs.c.status == JobStatus.DEFERRED, jobs.c.not_before <= now),
    )


def held(job_id: int, attempt: int) -> ColumnElement[bool]:
    """The fencing rule: this attempt still holds the job (its row says so)."""
    return and_(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == JobStatus.RUNNING)


def _self_deploy() -> ColumnElement[bool]:
    return and_(jobs.c.stage == Stage.DEPLOY, repos.c.is_self.is_(True))


def _unclaimed(job_id: int) -> Select[tuple[int]]:
    """The job, if it is still waiting and no concurrent claim holds it (SQLite, whose
    writers take turns, renders no lock)."""
    return (
        select(jobs.c.id)
        .where(jobs.c.id == job_id, jobs.c.status.in_([JobStatus.QUEUED, JobStatus.DEFERRED]))
        .with_for_update(skip_locked=True)
    )


def metrics_values(metrics: JobMetrics) -> dict[str, object]:
    """The job columns a finished attempt writes."""
    return {key: getattr(metrics, key) for key in JobMetrics.__dataclass_fields__}


class JobQueries(StoreBase):
    """Claim runnable jobs, hold them, and give them up."""

    def claim_jobs(
        self, worker_id: str, host: str, limit: int, lease_s: float, *, self_deploy: bool = False
    ) -> list[Job]:
        """Take up to `limit` runnable jobs, respecting each repo's serial gate.

        Older tasks go first, so that a task's next stage starts the moment its job ends
        instead of queueing behind every newer task's first stage. The deploy of a repo
        marked self is left to the supervised service (`self_deploy`): only it can restart
        on the merged code.

        On PostgreSQL, several workers (and a worker's slots handing off) claim at once: the
        candidates are read without a lock, and each is taken by an update of that one row
        under `FOR UPDATE SKIP LOCKED`, so no job is taken twice, a claim never waits for
        another, and it locks only what it takes (locking every candidate would push a
        concurrent claim past the oldest tasks' jobs). Each claim bumps the job's attempt.
        """
        if limit <= 0:
            return []
        claimed: list[Job] = []
        with self._write() as conn:
            # The database's clock on PostgreSQL, read by the candidates' query itself: one
            # round trip less than asking first, on the path of every hand-off.
            pg = conn.dialect.name == "postgresql"
            here = utcnow()
            clock: datetime | ColumnElement[datetime] = func.now() if pg else here
            columns: list[Any] = [
                jobs.c.id,
                jobs.c.task_id,
                jobs.c.stage,
                tasks.c.repo_id,
                tasks.c.gate_acquired_at,
                tasks.c.created_at,
            ]
            candidates = (
                select(*columns, *([func.now().label("now")] if pg else []))
                .join(tasks, tasks.c.id == jobs.c.task_id)
                .join(repos, repos.c.id == tasks.c.repo_id)
                .where(_runnable(clock), tasks.c.state == TaskState.ACTIVE)
                .order_by(tasks.c.created_at, tasks.c.id, jobs.c.id)
                .limit(limit + _CLAIM_LOOKAHEAD)
            )
            if not self_deploy:
                candidates = candidates.where(not_(_self_deploy()))
            rows = conn.execute(candidates).all()
            now = rows[0].now.astimezone(UTC) if pg and rows else here
            for row in rows:
                if len(claimed) == limit:
                    break
                needs_gate = row.stage in SERIAL_STAGES and row.gate_acquired_at is None
                if needs_gate and not self._acquire_gate(conn, row, now):
                    continue
                job = conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(_unclaimed(row.id)))
                    .values(
                        status=JobStatus.RUNNING,
                        attempt=jobs.c.attempt + 1,
                        worker_id=worker_id,
                        host=host,
                        started_at=now,
                        heartbeat_at=now,
                        lease_expires_at=now + timedelta(seconds=lease_s),
                        pid=None,
                        pgid=None,
                        proc_started_at=None,
                        marker=None,
                    )
                    .returning(jobs)
                ).first()
                if job is not None:
                    claimed.append(Job.from_row(job))
        return claimed

    @staticmethod
    def _acquire_gate(conn: Connection, row: Any, now: datetime) -> bool:
        """Take the repo's serial gate for the candidate `row`'s task, if it is its turn.

        The merge queue is first come, first served by task age: an older task of the repo
        still in testing goes first. The test-runner tests each task on top of the older
        ones ahead of it (`workspace.merging.speculate`); a younger one that merged first
        would make every one of those test runs stale.
        """
        task_id, repo_id = row.task_id, row.repo_id
        holder = conn.execute(
            select(tasks.c.id).where(
                tasks.c.repo_id == repo_id, tasks.c.gate_acquired_at.is_not(None)
            )
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

    def record_process(
        self, job_id: int, attempt: int, pid: int, create_time: float, marker: str
    ) -> bool:
        """Note the process of a running job, so that a later start can kill it if we die."""
        with self._write() as conn:
            result = conn.execute(
                update(jobs)
                .where(held(job_id, attempt))
                .values(pid=pid, pgid=pid, proc_started_at=create_time, marker=marker)
            )
        return result.rowcount == 1

    def renew_leases(self, worker_id: str, held: dict[int, int], lease_s: float) -> set[int]:
        """Extend the leases of the jobs this worker runs; returns the ids it still holds."""
        if not held:
            return set()
        with self._write() as conn:
            now = db_now(conn)
            rows = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(held),
                    jobs.c.worker_id == worker_id,
                    jobs.c.status == JobStatus.RUNNING,
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_s), heartbeat_at=now)
                .returning(jobs.c.id, jobs.c.attempt)
            ).all()
        return {row.id for row in rows if held.get(row.id) == row.attempt}

    def defer_job(self, job: Job, wait_s: float, metrics: JobMetrics, *, counted: Failure) -> Job:
        """Put a job aside for `wait_s` seconds, counting the failure against its own budget:
        the infrastructure's, the agent's, or the orchestrator's own code's.

        The wait is measured by the database's clock, the one every claim compares with: a
        worker whose clock runs an hour ahead would otherwise put the retry an hour away.
        """
        counter = FAILURE_COUNTERS[counted]
        with self._write() as conn:
            now = db_now(conn)
            row = conn.execute(
                update(jobs)
                .where(held(job.id, job.attempt))
                .values(
                    status=JobStatus.DEFERRED,
                    not_before=now + timedelta(seconds=wait_s),
                    finished_at=now,
                    lease_expires_at=None,
                    **{counter.key: counter + 1},
                    **metrics_values(metrics),
                )
                .returning(jobs)
            ).first()
        if row is None:
            raise StaleState(f"job {job.id} is no longer held by this attempt")
        return Job.from_row(row)

    def abandon_job(self, job: Job, reason: str) -> Job | None:
        """Give up a running job (its worker died or stops) and queue a fresh one in its place.

        The new job keeps the failure counters: a crash never counts against a budget, and
        never wipes the failures that did count. None when the job was no longer running.
        """
        now = utcnow()
        with self._write() as conn:
            row = conn.execute(
                update(jobs)
                .where(held(job.id, job.attempt))
                .values(
                    status=JobStatus.ABANDONED,
                    finished_at=now,
                    outcome="abandoned",
                    error_message=reason,
                    lease_expires_at=None,
                )
                .returning(jobs)
            ).first()
            if row is None:
                return None
            announce(conn)
            fresh = conn.execute(
                insert(jobs)
                .values(
                    task_id=row.task_id,
                    stage=row.stage,
                    round=row.round,
                    status=JobStatus.QUEUED,
                    created_at=now,
                    infra_failures=row.infra_failures,
                    agent_failures=row.agent_failures,
                    internal_failures=row.internal_failures,
                )
                .returning(jobs)
            ).one()
        return Job.from_row(fresh)

    def hold(self, job: Job, lease_s: float) -> None:
        """The fence before an irreversible step (a push, the deploy command): StaleState
        unless this attempt holds the job and its lease has not lapsed, by the database's
        clock. The lease is renewed in the same statement, so the step starts with a whole
        lease before any other worker may take the job. A lapsed lease is refused even when
        nobody has taken the job yet: anyone may, at any moment."""
        with self._write() as conn:
            now = db_now(conn)
            row = conn.execute(
                update(jobs)
                .where(held(job.id, job.attempt), jobs.c.lease_expires_at > now)
                .values(lease_expires_at=now + timedelta(seconds=lease_s))
                .returning(jobs.c.id)
            ).first()
        if row is None:
            raise StaleState(f"job {job.id} attempt {job.attempt} no longer holds its lease")

    def now(self) -> datetime:
        """The time by the database's clock (PostgreSQL), the one leases are measured with."""
        with self._read() as conn:
            return db_now(conn)

    def stray_processes(self, host: str) -> list[Job]:
        """Abandoned or cancelled jobs on `host` whose processes may still run.

        A worker that dies leaves its agent running; another machine that reclaims the job
        cannot kill it. A worker on that host kills it (`forget_process` afterwards).
        """
        query = select(jobs).where(
            jobs.c.status.in_([JobStatus.ABANDONED, JobStatus.CANCELLED]),
            jobs.c.host == host,
            jobs.c.pgid.is_not(None),
        )
        with self._read() as conn:
            return [Job.from_row(row) for row in conn.execute(query)]

    def forget_process(self, job: Job) -> None:
        """The ended job's processes are gone: later sweeps need not look at it again."""
        with self._write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.status.not_in(LIVE_JOB_STATUSES))
                .values(pgid=None)
            )

    def waiting_self_deploys(self) -> list[str]:
        """Tasks whose self deploy is runnable: only the supervised service may take it."""
        with self._read() as conn:
            query = (
                select(jobs.c.task_id)
                .join(tasks, tasks.c.id == jobs.c.task_id)
                .join(repos, repos.c.id == tasks.c.repo_id)
                .where(_runnable(db_now(conn)), tasks.c.state == TaskState.ACTIVE, _self_deploy())
            )
            return list(conn.execute(query).scalars())

    def get_job(self, job_id: int) -> Job:
        """One job by id."""
        with self._read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise StaleState(f"job {job_id} does not exist")
        return Job.from_row(row)

    def running_jobs(self) -> list[Job]:
        """Every job some worker holds."""
        with self._read() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.status == JobStatus.RUNNING)).all()
        return [Job.from_row(row) for row in rows]

    def task_jobs(self, task_id: str) -> list[Job]:
        """A task's jobs, oldest first."""
        query = select(jobs).where(jobs.c.task_id == task_id).order_by(jobs.c.id)
        with self._read() as conn:
            return [Job.from_row(row) for row in conn.execute(query)]

    def next_due_in(self) -> float | None:
        """Seconds until the earliest deferred job becomes runnable, by the database's clock
        (negative when it already is); None when no job is deferred."""
        with self._read() as conn:
            due = conn.execute(
                select(func.min(jobs.c.not_before)).where(jobs.c.status == JobStatus.DEFERRED)
            ).scalar()
            return None if due is None else (due - db_now(conn)).total_seconds()

    def pending_work(self) -> tuple[int, int]:
        """(active tasks, live jobs): the pipeline is drained when both are zero."""
        with self._read() as conn:
            active = conn.execute(
                select(func.count()).select_from(tasks).where(tasks.c.state == TaskState.ACTIVE)
            ).scalar_one()
            live = conn.execute(
                select(func.count()).select_from(jobs).where(jobs.c.status.in_(LIVE_JOB_STATUSES))
            ).scalar_one()
        return active, live
