"""Self deploys: the orchestrator deploying its own checkout, across its own restart.

The deploy job's process merges, records a pending deploy and restarts; the restarted
process completes it at boot, in one transaction with the deploy verdict, so that a crash at
any moment completes it exactly once. A supervisor that sees the new code fail records the
rollback instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update

from orchestrator.errors import StaleState
from orchestrator.pipeline.stages import Producer, Stage, TaskState
from orchestrator.store import tallies
from orchestrator.store.base import announce, utcnow
from orchestrator.store.jobs import held
from orchestrator.store.lifecycle import LifecycleQueries
from orchestrator.store.records import LIVE_JOB_STATUSES, Job, JobStatus, Task
from orchestrator.store.schema import jobs, self_deploys, tasks
from orchestrator.store.tasks import MoveRows, fetch_task, write_move
from orchestrator.store.verdicts import Verdict


class SelfDeployState(StrEnum):
    """Where a deploy of the orchestrator's own checkout stands."""

    PENDING = "pending"  # merged (or about to be); the restarted service completes it
    COMPLETED = "completed"  # the restarted service runs the new code and wrote DEPLOYED
    HEALTHY = "healthy"  # the supervisor watched the new code answer for its window
    ROLLED_BACK = "rolled_back"  # the new code failed: reverted, the old code runs again
    ABANDONED = "abandoned"  # nothing landed (the branch never moved)
    FAILED = "failed"  # landed but could not complete: the deploy verdict says FAILED
    CANCELLED = "cancelled"  # landed, then a person cancelled the task before it completed


@dataclass(frozen=True)
class SelfDeploy:
    """A deploy of the orchestrator's own checkout."""

    id: int
    task_id: str
    job_id: int
    attempt: int
    old_commit: str | None
    merged_commit: str
    new_commit: str | None
    revert_commit: str | None
    note: str
    # Set from the record until the job asks for the restart: a boot that still finds it
    # knows the service stopped while the deploy command ran (never a DEPLOYED).
    command_running: bool
    state: SelfDeployState
    reason: str | None
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> SelfDeploy:
        """Build from a `self_deploys` row."""
        values = dict(row._mapping)
        values["state"] = SelfDeployState(values["state"])
        return cls(**values)


class _AlreadyJudged(Exception):
    """The deploy was closed under us: the rollback's transaction must write nothing."""


class SelfDeployQueries(LifecycleQueries):
    """Record, complete and roll back self deploys."""

    def record_self_deploy(
        self, job: Job, old: str | None, merged: str, note: str = "", *, command: bool = False
    ) -> SelfDeploy:
        """Remember, before the default branch moves, what the restart must complete.

        Fenced like every job commit: only the attempt that holds the job may record it
        (StaleState otherwise), so a job taken over cannot merge under its new holder.
        """
        with self._write() as conn:
            self._check_held(conn, job)
            row = conn.execute(
                insert(self_deploys)
                .values(
                    task_id=job.task_id,
                    job_id=job.id,
                    attempt=job.attempt,
                    old_commit=old,
                    merged_commit=merged,
                    note=note,
                    command_running=command,
                    state=SelfDeployState.PENDING,
                    created_at=utcnow(),
                )
                .returning(self_deploys)
            ).one()
        return SelfDeploy.from_row(row)

    def note_self_deploy(self, deploy: SelfDeploy, job: Job, note: str) -> None:
        """Add what the deploy command did to a pending deploy, which says so: the command
        is over (fenced by the attempt)."""
        with self._write() as conn:
            self._check_held(conn, job)
            conn.execute(
                update(self_deploys)
                .where(
                    self_deploys.c.id == deploy.id, self_deploys.c.state == SelfDeployState.PENDING
                )
                .values(note=note, command_running=False)
            )

    def settle_self_deploy(
        self,
        deploy: SelfDeploy,
        state: SelfDeployState,
        reason: str,
        verdict: Verdict | None = None,
    ) -> bool:
        """Close a pending deploy that will not restart (abandoned, failed, cancelled), with
        the job's verdict, if it has one, in the same transaction. False if not pending."""
        with self._write() as conn:
            settled = conn.execute(
                update(self_deploys)
                .where(
                    self_deploys.c.id == deploy.id, self_deploys.c.state == SelfDeployState.PENDING
                )
                .values(state=state, reason=reason, completed_at=utcnow())
            )
            if settled.rowcount != 1:
                return False
            if verdict is not None:
                self._apply_verdict(conn, verdict)
            return True

    @staticmethod
    def _check_held(conn: Connection, job: Job) -> None:
        # An update, not a read: it locks the job's row until the commit (PostgreSQL), so no
        # other worker can take the job over between this check and the write it fences.
        locked = conn.execute(
            update(jobs).where(held(job.id, job.attempt)).values(heartbeat_at=utcnow())
        )
        if locked.rowcount != 1:
            raise StaleState(f"job {job.id} attempt {job.attempt} is no longer current")

    def get_self_deploy(self, deploy_id: int) -> SelfDeploy | None:
        """One self deploy as it stands now."""
        with self._read() as conn:
            row = conn.execute(select(self_deploys).where(self_deploys.c.id == deploy_id)).first()
        return None if row is None else SelfDeploy.from_row(row)

    def self_deploys(self, *states: SelfDeployState) -> list[SelfDeploy]:
        """Self deploys in these states (every one when none is given), oldest first."""
        query = select(self_deploys).order_by(self_deploys.c.id)
        if states:
            query = query.where(self_deploys.c.state.in_(states))
        with self._read() as conn:
            return [SelfDeploy.from_row(row) for row in conn.execute(query)]

    def complete_self_deploy(
        self, deploy: SelfDeploy, new_commit: str | None, verdict: Verdict
    ) -> Task | None:
        """Mark it completed and commit the deploy verdict, at once; None if already done."""
        with self._write() as conn:
            claimed = conn.execute(
                update(self_deploys)
                .where(
                    self_deploys.c.id == deploy.id, self_deploys.c.state == SelfDeployState.PENDING
                )
                .values(
                    state=SelfDeployState.COMPLETED, new_commit=new_commit, completed_at=utcnow()
                )
            )
            if claimed.rowcount != 1:
                return None
            self._apply_verdict(conn, verdict)
            return fetch_task(conn, deploy.task_id)

    def mark_self_deploy_healthy(self, deploy_id: int) -> None:
        """The new code stayed healthy through the watch."""
        with self._write() as conn:
            conn.execute(
                update(self_deploys)
                .where(
                    self_deploys.c.id == deploy_id,
                    self_deploys.c.state == SelfDeployState.COMPLETED,
                )
                .values(state=SelfDeployState.HEALTHY)
            )

    def fail_self_deploy(
        self,
        deploy: SelfDeploy,
        deploy_log: str,
        monitor_report: str,
        reason: str,
        revert_commit: str | None,
    ) -> Task | None:
        """Record a rolled-back self deploy: the task fails with monitor_status: UNHEALTHY.

        Written by the supervisor, which is the authority here: the jobs of a process it
        killed are ended without their attempt. None when the deploy is no longer open or
        the task already has its verdict (the in-service monitor judged it first): the two
        verdicts are exclusive, and whichever commits first wins.
        """
        try:
            with self._write() as conn:
                return self._roll_back(
                    conn, deploy, deploy_log, monitor_report, reason, revert_commit
                )
        except _AlreadyJudged:
            return None

    def record_late_revert(
        self, deploy: SelfDeploy, revert_commit: str | None, reason: str
    ) -> bool:
        """The task already failed at post-deploy (its monitor's own verdict) and the merge was
        reverted after it: mark the deploy rolled back and raise the alert, at once. False if
        the deploy was not completed (someone else rolled it back)."""
        with self._write() as conn:
            marked = conn.execute(
                update(self_deploys)
                .where(
                    self_deploys.c.id == deploy.id,
                    self_deploys.c.state.in_([SelfDeployState.COMPLETED, SelfDeployState.HEALTHY]),
                )
                .values(
                    state=SelfDeployState.ROLLED_BACK, revert_commit=revert_commit, reason=reason
                )
            )
            if marked.rowcount != 1:
                return False
            self._alert(conn, "self_deploy_rolled_back", reason, deploy.task_id)
            return True

    def self_deploy_open(self, deploy: SelfDeploy) -> bool:
        """True while a rollback may still be recorded: the deploy is pending or completed and
        its task is still active in deploy or post-deploy."""
        with self._read() as conn:
            row = conn.execute(
                select(self_deploys.c.state, tasks.c.state.label("task_state"), tasks.c.stage)
                .join(tasks, tasks.c.id == self_deploys.c.task_id)
                .where(self_deploys.c.id == deploy.id)
            ).first()
        return (
            row is not None
            and row.state in (SelfDeployState.PENDING, SelfDeployState.COMPLETED)
            and row.task_state == TaskState.ACTIVE
            and row.stage in (Stage.DEPLOY, Stage.POST_DEPLOY)
        )

    def _roll_back(
        self,
        conn: Connection,
        deploy: SelfDeploy,
        deploy_log: str,
        monitor_report: str,
        reason: str,
        revert_commit: str | None,
    ) -> Task | None:
        now = utcnow()
        # The task first: its verdict and this one are exclusive (checked here, in the
        # committing transaction, not before it).
        failed = conn.execute(
            update(tasks)
            .where(
                tasks.c.id == deploy.task_id,
                tasks.c.state == TaskState.ACTIVE,
                tasks.c.stage.in_([Stage.DEPLOY, Stage.POST_DEPLOY]),
            )
            .values(
                stage=Stage.POST_DEPLOY,
                state=TaskState.FAILED,
                reason=reason,
                gate_acquired_at=None,
                updated_at=now,
            )
        )
        if failed.rowcount != 1:
            return None  # judged already (done, failed, cancelled): nothing is written
        tallies.count_task(conn, TaskState.ACTIVE, TaskState.FAILED)
        prior = conn.execute(
            select(self_deploys.c.state).where(self_deploys.c.id == deploy.id)
        ).scalar_one()
        rolled = conn.execute(
            update(self_deploys)
            .where(self_deploys.c.id == deploy.id, self_deploys.c.state == prior)
            .where(self_deploys.c.state.in_([SelfDeployState.PENDING, SelfDeployState.COMPLETED]))
            .values(
                state=SelfDeployState.ROLLED_BACK,
                reason=reason,
                revert_commit=revert_commit,
                completed_at=now,
            )
        )
        if rolled.rowcount != 1:
            raise _AlreadyJudged  # rolls the task's update back: nothing is written
        task = fetch_task(conn, deploy.task_id)
        if prior == SelfDeployState.PENDING:
            self._end_directly(conn, deploy.job_id)
            write_move(
                conn,
                MoveRows(
                    task.id, deploy.job_id, task.round, Producer.DEPLOY_FINALIZER,
                    Stage.DEPLOY, Stage.POST_DEPLOY.value, "DEPLOYED",
                ),
                "16-deploy-log.md",
                deploy_log,
            )  # fmt: skip
        monitor_job = self._end_live_or_new(conn, task)
        write_move(
            conn,
            MoveRows(
                task.id, monitor_job, task.round, Producer.POST_DEPLOY_MONITOR,
                Stage.POST_DEPLOY, "failed", "UNHEALTHY",
            ),
            "17-monitor-report.md",
            monitor_report,
        )  # fmt: skip
        self._alert(conn, "self_deploy_rolled_back", reason, task.id)
        announce(conn)
        return fetch_task(conn, task.id)

    @staticmethod
    def _end_directly(conn: Connection, job_id: int) -> None:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(LIVE_JOB_STATUSES))
            .values(
                status=JobStatus.DONE,
                outcome="verdict",
                finished_at=utcnow(),
                lease_expires_at=None,
            )
        )

    def _end_live_or_new(self, conn: Connection, task: Task) -> int:
        live = conn.execute(
            select(jobs.c.id).where(jobs.c.task_id == task.id, jobs.c.status.in_(LIVE_JOB_STATUSES))
        ).first()
        if live is not None:
            self._end_directly(conn, live.id)
            return int(live.id)
        return int(
            conn.execute(
                insert(jobs)
                .values(
                    task_id=task.id,
                    stage=Stage.POST_DEPLOY,
                    round=task.round,
                    producer=Producer.POST_DEPLOY_MONITOR,
                    status=JobStatus.DONE,
                    outcome="verdict",
                    created_at=utcnow(),
                    finished_at=utcnow(),
                )
                .returning(jobs.c.id)
            ).scalar_one()
        )
