"""Read models for `orch queue`, `orch status` and their HTTP twins: few queries, no N+1."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import ScalarSelect, and_, func, literal, or_, select, union_all

from orchestrator.pipeline.stages import SERIAL_STAGES, Stage, TaskState, artifact_for
from orchestrator.pipeline.verdicts import Judged
from orchestrator.store.base import StoreBase
from orchestrator.store.records import Job, JobStatus, Task
from orchestrator.store.schema import artifacts, jobs, repos, task_tallies, tasks
from orchestrator.store.tallies import summed

_TASKS = summed(task_tallies)  # tasks by state


@dataclass(frozen=True)
class QueuedJob:
    """A live job with the task it serves."""

    job: Job
    repo: str
    title: str


@dataclass(frozen=True)
class SerialGate:
    """Per repo: the task between deploy-staging and the end of post-deploy, and who waits."""

    holder: str | None
    waiting: tuple[str, ...]
    # The merge queue: for each of these tasks, the commits its current round's test judged
    # (the base it was tested on); a task without a test-runner verdict has none.
    judged: Mapping[str, Judged] = field(default_factory=dict)


@dataclass(frozen=True)
class Queue:
    """Running, queued and deferred jobs, and every repo's serial gate."""

    running: tuple[QueuedJob, ...]
    queued: tuple[QueuedJob, ...]
    deferred: tuple[QueuedJob, ...]
    serial_gate: dict[str, SerialGate]


@dataclass(frozen=True)
class QueueEntry:
    """A task that will merge before another: the gate's holder, or an older task of the
    repo in testing or waiting for the gate (the gate goes by task age)."""

    task_id: str
    branch: str
    tested: Judged | None  # what its test judged, once it passed; None while in testing


@dataclass(frozen=True)
class Counts:
    """Tasks by state and by stage (active tasks only for stages); live jobs by status."""

    by_state: dict[str, int]
    by_stage: dict[str, int]
    jobs: dict[str, int] = field(default_factory=dict)  # running, queued, deferred


def _latest_test_report() -> ScalarSelect[str | None]:
    """The text of the latest test report of the task's current round (None without one),
    looked up task by task through the (task_id, name) index: the tasks asked about are few,
    and the artifacts of every task ever run are not scanned."""
    return (
        select(artifacts.c.text)
        .where(
            artifacts.c.task_id == tasks.c.id,
            artifacts.c.name == artifact_for(Stage.TESTING),
            artifacts.c.round == tasks.c.round,
        )
        .order_by(artifacts.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _judged(rows: Iterable[tuple[str, str | None]]) -> dict[str, Judged | None]:
    return {task_id: Judged.read(text) for task_id, text in rows if text is not None}


class ViewQueries(StoreBase):
    """What the queue and the status pages show."""

    def queue(self) -> Queue:
        """The live jobs and the serial gates."""
        live = (
            select(jobs, repos.c.name.label("repo_name"), tasks.c.title.label("task_title"))
            .join(tasks, tasks.c.id == jobs.c.task_id)
            .join(repos, repos.c.id == tasks.c.repo_id)
            .where(jobs.c.status.in_([JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.DEFERRED]))
            .order_by(jobs.c.id)
        )
        in_gate = and_(
            tasks.c.repo_id == repos.c.id,
            tasks.c.state == TaskState.ACTIVE,
            tasks.c.stage.in_(SERIAL_STAGES),
        )
        # Every repo, with a row per task in its gate (one with no task id for a repo whose
        # gate is free), in the order its gate goes in.
        gated = (
            select(repos.c.name, tasks.c.id, tasks.c.gate_acquired_at, _latest_test_report())
            .select_from(repos.outerjoin(tasks, in_gate))
            .order_by(repos.c.name, tasks.c.created_at, tasks.c.id)
        )
        with self._read() as conn:
            rows = conn.execute(live).all()
            every_repo = conn.execute(gated).all()
        repo_names = list(dict.fromkeys(name for name, *_ in every_repo))
        gate_rows = [row for row in every_repo if row[1] is not None]
        by_status: dict[str, list[QueuedJob]] = {s: [] for s in JobStatus}
        for row, job in zip(rows, Job.from_rows(rows), strict=True):
            by_status[job.status].append(QueuedJob(job, row.repo_name, row.task_title))
        holders: dict[str, str] = {}
        waiting: dict[str, list[str]] = {}
        for name, task_id, acquired, _ in gate_rows:
            if acquired is not None:
                holders[name] = task_id
            else:
                waiting.setdefault(name, []).append(task_id)
        judged = _judged([(task_id, report) for _, task_id, _, report in gate_rows])
        gates = {}
        for name in repo_names:
            holder, queue = holders.get(name), tuple(waiting.get(name, ()))
            tested = {
                task_id: found
                for task_id in (holder, *queue)
                if task_id is not None and (found := judged.get(task_id)) is not None
            }
            gates[name] = SerialGate(holder, queue, tested)
        return Queue(
            tuple(by_status[JobStatus.RUNNING]),
            tuple(by_status[JobStatus.QUEUED]),
            tuple(by_status[JobStatus.DEFERRED]),
            gates,
        )

    def ahead_of(self, task: Task) -> list[QueueEntry]:
        """The tasks that will merge before `task`, in the order they will."""
        in_queue = tasks.c.stage.in_([Stage.TESTING, *SERIAL_STAGES])
        older = or_(
            tasks.c.created_at < task.created_at,
            and_(tasks.c.created_at == task.created_at, tasks.c.id < task.id),
        )
        rows = (
            select(tasks.c.id, tasks.c.branch, tasks.c.stage)
            .join(repos, repos.c.id == tasks.c.repo_id)
            .where(
                repos.c.name == task.repo,
                tasks.c.state == TaskState.ACTIVE,
                tasks.c.id != task.id,
                in_queue,
                or_(tasks.c.gate_acquired_at.is_not(None), older),
            )
            .order_by(tasks.c.gate_acquired_at.is_(None), tasks.c.created_at, tasks.c.id)
        )
        with self._read() as conn:
            found = conn.execute(rows).all()
            passed = [row.id for row in found if row.stage in SERIAL_STAGES]
            reports = conn.execute(
                select(tasks.c.id, _latest_test_report()).where(tasks.c.id.in_(passed))
            ).all()
        judged = _judged(reports)
        return [QueueEntry(row.id, row.branch, judged.get(row.id)) for row in found]

    def counts(self) -> Counts:
        """How many tasks are in each state (the running totals), active ones in each stage,
        and live jobs in each status (by the index on status: the live ones only, however many
        have ended), in one query."""
        live = [JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.DEFERRED]
        query = union_all(
            select(literal("state"), _TASKS.c.state, _TASKS.c.tasks).where(_TASKS.c.tasks > 0),
            select(literal("stage"), tasks.c.stage, func.count())
            .where(tasks.c.state == TaskState.ACTIVE)
            .group_by(tasks.c.stage),
            select(literal("job"), jobs.c.status, func.count())
            .where(jobs.c.status.in_(live))
            .group_by(jobs.c.status),
        )
        found: dict[str, dict[str, int]] = {"state": {}, "stage": {}, "job": {}}
        with self._read() as conn:
            for kind, name, count in conn.execute(query):
                found[kind][name] = int(count)
        by_status = {str(status): 0 for status in live} | found["job"]
        return Counts(found["state"], found["stage"], by_status)
