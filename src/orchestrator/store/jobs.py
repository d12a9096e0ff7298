"""Queries on jobs: claiming, leases, deferral and recovery.

Every change to a running job is conditional on its status and attempt (the fencing token):
a worker that lost its job, to a cancel or to another worker, cannot change it any more.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, func, insert, select, update

from orchestrator.errors import StaleState
from orchestrator.pipeline.stages import TaskState
from orchestrator.store.base import StoreBase, announce, db_now, utcnow
from orchestrator.store.claims import Claimant, claim, runnable, self_deploy_job
from orchestrator.store.records import LIVE_JOB_STATUSES, Job, JobMetrics, JobStatus
from orchestrator.store.schema import jobs, repos, tasks

# What failed, each with a budget of its own: a tool or service the job needs, the agent,
# or the orchestrator's own code (one never spends another's retries).
Failure = Literal["infra", "agent", "internal"]
FAILURE_COUNTERS = {
    "infra": jobs.c.infra_failures,
    "agent": jobs.c.agent_failures,
    "internal": jobs.c.internal_failures,
}


def held(
    job_id: int | BindParameter[int], attempt: int | BindParameter[int]
) -> ColumnElement[bool]:
    """The fencing rule: this attempt still holds the job (its row says so)."""
    return and_(jobs.c.id == job_id, jobs.c.attempt == attempt, jobs.c.status == JobStatus.RUNNING)


# Every job's path changes its row twice (its process, its end): the statement is built and
# keyed once, and sets the columns its parameters name (`held_values`). Building and keying
# a statement costs the worker more of the interpreter than sending it does.
UPDATE_HELD = update(jobs).where(held(bindparam("held_id"), bindparam("held_attempt")))


def held_values(job_id: int, attempt: int, **values: object) -> dict[str, object]:
    """The parameters of `UPDATE_HELD`: set `values` if this attempt still holds the job."""
    return {"held_id": job_id, "held_attempt": attempt, **values}


def metrics_values(metrics: JobMetrics) -> dict[str, object]:
    """The job columns a finished attempt writes."""
    return {key: getattr(metrics, key) for key in JobMetrics.__dataclass_fields__}


class JobQueries(StoreBase):
    """Claim runnable jobs, hold them, and give them up."""

    def claim_jobs(
        self, worker_id: str, host: str, limit: int, lease_s: float, *, self_deploy: bool = False
    ) -> list[Job]:
        """Take up to `limit` runnable jobs, respecting each repo's serial gate (`claim`)."""
        if limit <= 0:
            return []
        with self._write() as conn:
            return claim(conn, Claimant(worker_id, host, lease_s, self_deploy), limit)

    def record_process(
        self, job_id: int, attempt: int, pid: int, create_time: float, marker: str
    ) -> bool:
        """Note the process of a running job, so that a later start can kill it if we die."""
        with self._write() as conn:
            result = conn.execute(
                UPDATE_HELD,
                held_values(
                    job_id, attempt, pid=pid, pgid=pid, proc_started_at=create_time, marker=marker
                ),
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
                .where(runnable(db_now(conn)), tasks.c.state == TaskState.ACTIVE, self_deploy_job())
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
