"""The transactions that move a task: a verdict, a block, a cancel, a resume, a retry.

Each is one database transaction: the job's end, its artifact, the event, the task's new
stage and the next job commit together or not at all, so a crash can never leave a verdict
half-recorded or recorded twice (`events.job_id` is unique as well).
"""

from __future__ import annotations

from sqlalchemy import Connection, insert, update

from orchestrator.errors import Conflict, StaleState
from orchestrator.pipeline.stages import Producer, Stage, TaskState
from orchestrator.pipeline.transitions import Judgement
from orchestrator.store import tallies
from orchestrator.store.base import StoreBase, announce, utcnow
from orchestrator.store.claims import Claimant, claim, frees_gate, keeps_gate
from orchestrator.store.jobs import UPDATE_HELD, held_values, metrics_values
from orchestrator.store.records import LIVE_JOB_STATUSES, Job, JobMetrics, JobStatus, Task
from orchestrator.store.schema import alerts, jobs, tasks
from orchestrator.store.tasks import MoveRows, fetch_task, write_move
from orchestrator.store.verdicts import STILL_IN_STAGE, Verdict, move_reason, write_verdict

RETRY_VERDICT = "RETRY"  # the verdict word of a person's retry event


# The statements of every verdict, built and keyed once (store/jobs.py, `UPDATE_HELD`): an
# active task's move out of the stage its job ran in, setting the columns its parameters
# name; and a fresh job.
_MOVE_ACTIVE = update(tasks).where(*STILL_IN_STAGE)
_QUEUE = insert(jobs).returning(jobs.c.id)


class LifecycleQueries(StoreBase):
    """Commit verdicts and the moves people make (cancel, resume, retry)."""

    def finish_job(self, verdict: Verdict, hand_off: Claimant | None = None) -> Job | None:
        """Record a verdict: job done, artifact, event, the task's move and its next job. The
        task is not read back: the caller knows where the move took it.

        With `hand_off`, the same transaction then claims the job the freed slot runs next
        (store/claims.py), and returns it: the next stage starts without a transaction of its
        own. The job this verdict queued wakes the other workers only when it is not the
        one claimed here; a serial gate the move freed always does.
        """
        with self._write() as conn:
            queued = self._apply_verdict(conn, verdict, announced=hand_off is None)
            if hand_off is None:
                return None
            claimed = claim(conn, hand_off, 1)
            if queued is not None and [job.id for job in claimed] != [queued]:
                announce(conn)
            return claimed[0] if claimed else None

    def _apply_verdict(
        self, conn: Connection, verdict: Verdict, *, announced: bool = True
    ) -> int | None:
        """The verdict's rows; the id of the job it queued, if any (announced or not). One
        statement on PostgreSQL (store/verdicts.py); one by one on SQLite."""
        job, move = verdict.job, verdict.transition
        queued = None
        if conn.dialect.name == "postgresql":
            queued = write_verdict(conn, verdict, announced=announced)
        else:
            self._end_job(conn, job, JobStatus.DONE, verdict.metrics)
            rows = MoveRows(
                job.task_id, job.id, job.round, verdict.producer, job.stage, move.event_to,
                verdict.verdict,
            )  # fmt: skip
            write_move(conn, rows, verdict.artifact_name, verdict.artifact_text)
            self._move_task(conn, job, move.stage, move.state, move.round, move.alert)
            if move.state is TaskState.ACTIVE:
                queued = self._queue(conn, job.task_id, move.stage, move.round, announced=announced)
        if move.alert:
            self._alert(conn, verdict.alert_kind, move.alert, job.task_id)
        if verdict.extra_alert:
            self._alert(conn, *verdict.extra_alert, job.task_id)
        return queued

    def block_task(self, job: Job, reason: str, metrics: JobMetrics, alert_kind: str) -> Task:
        """End a job without a verdict and park its task for a person, with an alert."""
        with self._write() as conn:
            self._end_job(conn, job, JobStatus.DONE, metrics)
            self._move_task(conn, job, job.stage, TaskState.BLOCKED, job.round, reason)
            self._alert(conn, alert_kind, reason, job.task_id)
            announce(conn)  # its serial gate, if it held one, is free
            return fetch_task(conn, job.task_id)

    def cancel_task(self, task_id: str) -> tuple[Task, Job | None]:
        """Cancel a task that is not finished; returns it and the live job it had, if any."""
        now = utcnow()
        with self._write() as conn:
            task = fetch_task(conn, task_id)
            if task.state.is_final:
                raise Conflict(f"task {task_id} is already {task.state}")
            live = conn.execute(
                update(jobs)
                .where(jobs.c.task_id == task_id, jobs.c.status.in_(LIVE_JOB_STATUSES))
                .values(status=JobStatus.CANCELLED, finished_at=now, outcome="cancelled")
                .returning(jobs)
            ).first()
            cancelled = conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.state == task.state)
                .values(
                    state=TaskState.CANCELLED,
                    reason="cancelled by a person",
                    gate_acquired_at=None,
                    updated_at=now,
                )
            )
            if cancelled.rowcount != 1:  # a verdict moved it meanwhile: judge it again
                raise Conflict(f"task {task_id} moved while being cancelled; try again")
            tallies.count_task(conn, task.state, TaskState.CANCELLED)
            announce(conn)  # its serial gate, if it held one, is free
            return fetch_task(conn, task_id), Job.from_row(live) if live else None

    def resume_task(self, task_id: str) -> Task:
        """Send a blocked task back into its stage with a fresh job."""
        with self._write() as conn:
            task = fetch_task(conn, task_id)
            if task.state is not TaskState.BLOCKED:
                raise Conflict(f"task {task_id} is {task.state}, not blocked: nothing to resume")
            resumed = conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.state == TaskState.BLOCKED)
                .values(state=TaskState.ACTIVE, reason=None, updated_at=utcnow())
            )
            if resumed.rowcount != 1:
                raise Conflict(f"task {task_id} moved meanwhile: nothing to resume")
            tallies.count_task(conn, TaskState.BLOCKED, TaskState.ACTIVE)
            self._queue(conn, task_id, task.stage, task.round)
            return fetch_task(conn, task_id)

    def retry_task(self, task_id: str, setup_again: bool = False) -> Task:
        """Give a failed task a new development round with a fresh budget of returns.

        The move is an event of its own (producer `person`, verdict RETRY) from the stage the
        task failed in, so the new round's developer gets what failed it as feedback, exactly
        as after a failing verdict. `setup_again`: its worktree was made anew, so the repo's
        setup command runs in it before the next job.
        """
        with self._write() as conn:
            task = fetch_task(conn, task_id)
            if task.state is not TaskState.FAILED:
                raise Conflict(f"task {task_id} is {task.state}, not failed: nothing to retry")
            fresh = task.round + 1
            retried = conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.state == TaskState.FAILED)
                .values(
                    stage=Stage.DEVELOPMENT,
                    state=TaskState.ACTIVE,
                    round=fresh,
                    budget_round=fresh,
                    reason=None,
                    updated_at=utcnow(),
                    **({"setup_done_at": None} if setup_again else {}),
                )
            )
            if retried.rowcount != 1:
                raise Conflict(f"task {task_id} moved meanwhile: nothing to retry")
            tallies.count_task(conn, TaskState.FAILED, TaskState.ACTIVE)
            rows = MoveRows(
                task_id, None, task.round, Producer.PERSON, task.stage, Stage.DEVELOPMENT,
                RETRY_VERDICT,
            )  # fmt: skip
            write_move(conn, rows)
            self._queue(conn, task_id, Stage.DEVELOPMENT, fresh)
            return fetch_task(conn, task_id)

    def record_person_verdict(
        self, task: Task, artifact_name: str, text: str, judged: Judgement
    ) -> Task:
        """A person's verdict on a stage that waits for one: the artifact, the event and the
        move, as a job's verdict records them; Conflict when the task moved meanwhile."""
        move, now = judged.move, utcnow()
        with self._write() as conn:
            moved = conn.execute(
                update(tasks)
                .where(
                    tasks.c.id == task.id,
                    tasks.c.state == TaskState.BLOCKED,
                    tasks.c.stage == task.stage,
                    tasks.c.round == task.round,
                )
                .values(
                    stage=move.stage,
                    state=move.state,
                    round=move.round,
                    reason=move.alert if move.state is not TaskState.ACTIVE else None,
                    updated_at=now,
                )
            )
            if moved.rowcount != 1:
                raise Conflict(f"task {task.id} is no longer blocked in {task.stage}")
            tallies.count_task(conn, TaskState.BLOCKED, move.state)
            rows = MoveRows(
                task.id, None, task.round, Producer.PERSON, task.stage, move.event_to,
                judged.gate.verdict,
            )  # fmt: skip
            write_move(conn, rows, artifact_name, text)
            if move.state is TaskState.ACTIVE:
                self._queue(conn, task.id, move.stage, move.round)
            else:
                announce(conn)
            if move.alert:
                self._alert(conn, judged.alert_kind, move.alert, task.id)
            return fetch_task(conn, task.id)

    def mark_setup_done(self, task_id: str) -> None:
        """Remember that the repo's setup command ran in this task's worktree."""
        with self._write() as conn:
            conn.execute(update(tasks).where(tasks.c.id == task_id).values(setup_done_at=utcnow()))

    # --- the pieces every move is made of ----------------------------------------------------

    @staticmethod
    def _end_job(conn: Connection, job: Job, status: JobStatus, metrics: JobMetrics) -> None:
        ended = conn.execute(
            UPDATE_HELD,
            held_values(
                job.id,
                job.attempt,
                status=status,
                finished_at=utcnow(),
                lease_expires_at=None,
                **metrics_values(metrics),
            ),
        )
        if ended.rowcount != 1:
            # Cancelled, reclaimed by another worker, or already finished: this attempt's
            # result must not count (the fencing rule).
            raise StaleState(f"job {job.id} attempt {job.attempt} is no longer current")

    @staticmethod
    def _move_task(
        conn: Connection,
        job: Job,
        stage: str,
        state: TaskState,
        round_: int,
        reason: str | None,
    ) -> None:
        values: dict[str, object] = {
            "move_id": job.task_id,
            "move_from": job.stage,
            "stage": stage,
            "state": state,
            "round": round_,
            "updated_at": utcnow(),
            "reason": move_reason(state, reason),
        }
        if not keeps_gate(state, stage):
            values["gate_acquired_at"] = None
        moved = conn.execute(_MOVE_ACTIVE, values)
        if moved.rowcount != 1:
            raise StaleState(f"task {job.task_id} left {job.stage} before the job ended")
        tallies.count_task(conn, TaskState.ACTIVE, state)
        if frees_gate(job.stage, state, stage):
            # The serial gate, if this task held it, is free, or it no longer tests ahead of
            # younger tasks: one waiting for the gate must hear of it now, not at the next
            # fallback poll (a final verdict queues no job, so nothing else would announce it).
            announce(conn)

    @staticmethod
    def _queue(
        conn: Connection, task_id: str, stage: str, round_: int, *, announced: bool = True
    ) -> int:
        """A fresh job for the task's stage; its id. Announced unless the caller says it
        will (or need not: it claims the job itself)."""
        if announced:
            announce(conn)
        values = {
            "task_id": task_id,
            "stage": stage,
            "round": round_,
            "status": JobStatus.QUEUED,
            "created_at": utcnow(),
        }
        return int(conn.execute(_QUEUE, values).scalar_one())

    @staticmethod
    def _alert(conn: Connection, kind: str, message: str, task_id: str | None) -> None:
        conn.execute(
            insert(alerts).values(task_id=task_id, kind=kind, message=message, created_at=utcnow())
        )
