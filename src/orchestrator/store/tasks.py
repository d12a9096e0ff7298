"""Queries on tasks, their stage history (events) and their artifacts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, Select, and_, bindparam, func, insert, or_, select

from orchestrator.errors import NotFound
from orchestrator.pipeline.pipelines import BUILT_IN, Pipeline
from orchestrator.pipeline.stages import (
    STAGE_TRANSITIONS,
    TASK_ARTIFACT,
    Outcome,
    Producer,
    Stage,
    StageKind,
    TaskState,
)
from orchestrator.store import tallies
from orchestrator.store.base import StoreBase, announce, utcnow
from orchestrator.store.records import Artifact, Event, JobStatus, Repo, Task
from orchestrator.store.schema import artifacts, events, jobs, repos, tasks


@dataclass(frozen=True)
class NewTask:
    """A task as intake creates it, before it has a row."""

    id: str
    repo_id: int
    title: str
    description: str
    branch: str
    worktree: str
    stage: str = Stage.ANALYSIS  # the first stage of its pipeline the repo does not skip
    pipeline: Pipeline = BUILT_IN


def task_select() -> Select[tuple[object, ...]]:
    """Tasks joined with their repo's name (as `repo`)."""
    return select(tasks, repos.c.name.label("repo")).join(repos, repos.c.id == tasks.c.repo_id)


@dataclass(frozen=True)
class MoveRows:
    """Who moved a task from where to where: the event every move writes (intake, a verdict,
    a person's move), with the artifact when there is one."""

    task_id: str
    job_id: int | None  # None for intake and a person's move
    round: int
    producer: Producer
    from_stage: str | None  # None for intake
    to: str  # a stage, or "done", "failed", "blocked"
    verdict: str | None  # None for intake


# Built and keyed once: every move writes them (store/jobs.py, `UPDATE_HELD`, says why).
_NEW_ARTIFACT = insert(artifacts)
_NEW_EVENT = insert(events)

# What every job reads first: its task, its repo, the task's latest artifacts.
_TASK_BY_ID = task_select().where(tasks.c.id == bindparam("task_id"))
# A task and every column of its repo (as `repos_<column>`: `repo_id` is the task's).
_TASK_AND_REPO = (
    task_select()
    .add_columns(*(column.label(f"repos_{column.name}") for column in repos.c))
    .where(tasks.c.id == bindparam("task_id"))
)
_LATEST_ARTIFACTS = (
    select(artifacts)
    .where(
        artifacts.c.id.in_(
            select(func.max(artifacts.c.id))
            .where(artifacts.c.task_id == bindparam("task_id"))
            .group_by(artifacts.c.name)
        )
    )
    .order_by(artifacts.c.name)
)


def write_move(
    conn: Connection, rows: MoveRows, name: str | None = None, text: str | None = None
) -> None:
    """The one writer of a move's rows: the artifact (when there is one) and the event."""
    event = {
        "task_id": rows.task_id,
        "job_id": rows.job_id,
        "from_stage": rows.from_stage,
        "to_stage": rows.to,
        "verdict": rows.verdict,
        "producer": rows.producer,
        "round": rows.round,
        "at": utcnow(),
    }
    if name is not None and text is not None:
        shared = {column: event[column] for column in ("task_id", "job_id", "round", "producer")}
        artifact = {**shared, "name": name, "text": text, "created_at": event["at"]}
        conn.execute(_NEW_ARTIFACT, artifact)
    conn.execute(_NEW_EVENT, event)
    if rows.from_stage is not None:
        tallies.count_verdict(conn, str(rows.producer), rows.from_stage)


# The stages whose failing verdict sends a task back to development (the built-in ones; a
# repo's own checks and approvals are known by their producers).
ROLLBACK_STAGES = tuple(
    spec.stage for spec in STAGE_TRANSITIONS.values() if spec.on_fail is Outcome.ROLLBACK
)
_ROLLBACK_PRODUCERS = (Producer.PERSON, Producer.CHECK_RUNNER)


def fetch_task(conn: Connection, task_id: str) -> Task:
    """The task with that id, read in the caller's transaction; NotFound otherwise."""
    row = conn.execute(_TASK_BY_ID, {"task_id": task_id}).first()
    if row is None:
        raise no_task(task_id)
    return Task.from_row(row)


def no_task(task_id: str) -> NotFound:
    """The error for a task id that names no task."""
    return NotFound(f"no task {task_id} (see: orch task list)")


class TaskQueries(StoreBase):
    """Create, find and list tasks; read their events and artifacts."""

    def create_task(self, new: NewTask, task_md: str) -> Task:
        """Insert the task, its intake event, its `01-task.md` and its first job, at once (a
        pipeline that starts with an approval starts blocked, waiting for it, with no job)."""
        now = utcnow()
        waits = new.pipeline.spec(new.stage).kind is StageKind.APPROVAL
        with self._write() as conn:
            conn.execute(
                insert(tasks).values(
                    id=new.id,
                    repo_id=new.repo_id,
                    title=new.title,
                    description=new.description,
                    stage=new.stage,
                    state=TaskState.BLOCKED if waits else TaskState.ACTIVE,
                    reason=f"{new.stage} waits for a person's approval" if waits else None,
                    round=1,
                    branch=new.branch,
                    worktree=new.worktree,
                    created_at=now,
                    updated_at=now,
                    pipeline=new.pipeline.to_json(),
                )
            )
            tallies.count_task(conn, None, TaskState.BLOCKED if waits else TaskState.ACTIVE)
            intake = MoveRows(new.id, None, 1, Producer.INTAKE, None, new.stage, None)
            write_move(conn, intake, TASK_ARTIFACT, task_md)
            announce(conn)
            if not waits:
                conn.execute(
                    insert(jobs).values(
                        task_id=new.id,
                        stage=new.stage,
                        round=1,
                        status=JobStatus.QUEUED,
                        created_at=now,
                    )
                )
            return self._task(conn, new.id)

    def get_task(self, task_id: str) -> Task:
        """The task with that id; NotFound otherwise."""
        with self._read() as conn:
            return self._task(conn, task_id)

    def task_and_repo(self, task_id: str) -> tuple[Task, Repo]:
        """The task and its repo, in one query (what every job starts with)."""
        with self._read() as conn:
            row = conn.execute(_TASK_AND_REPO, {"task_id": task_id}).first()
        if row is None:
            raise no_task(task_id)
        m = row._mapping
        return Task.from_row(row), Repo.of({c.name: m[f"repos_{c.name}"] for c in repos.c})

    def list_tasks(
        self,
        *,
        state: TaskState | None = None,
        stage: Stage | None = None,
        repo: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Task]:
        """Tasks, oldest first, filtered by state, stage and repo name."""
        query = task_select().order_by(tasks.c.created_at, tasks.c.id)
        if state is not None:
            query = query.where(tasks.c.state == state)
        if stage is not None:
            query = query.where(tasks.c.stage == stage)
        if repo is not None:
            query = query.where(repos.c.name == repo)
        query = query.offset(offset).limit(limit)
        with self._read() as conn:
            return [Task.from_row(row) for row in conn.execute(query)]

    def events(self, task_id: str) -> list[Event]:
        """The task's stage moves, oldest first."""
        query = select(events).where(events.c.task_id == task_id).order_by(events.c.id)
        with self._read() as conn:
            return [Event.from_row(row) for row in conn.execute(query)]

    def artifact_names(self, task_ids: list[str]) -> dict[str, list[str]]:
        """The distinct artifact names of each task, sorted (one query for many tasks)."""
        query = (
            select(artifacts.c.task_id, artifacts.c.name)
            .where(artifacts.c.task_id.in_(task_ids))
            .distinct()
        )
        names: dict[str, list[str]] = defaultdict(list)
        with self._read() as conn:
            for task_id, name in conn.execute(query):
                names[task_id].append(name)
        return {task_id: sorted(names[task_id]) for task_id in task_ids}

    def get_artifact(self, task_id: str, name: str, round: int | None = None) -> Artifact:
        """The latest stored version of an artifact (of one round, when given)."""
        query = select(artifacts).where(artifacts.c.task_id == task_id, artifacts.c.name == name)
        if round is not None:
            query = query.where(artifacts.c.round == round)
        query = query.order_by(artifacts.c.id.desc()).limit(1)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            where = f" in round {round}" if round is not None else ""
            raise NotFound(f"task {task_id} has no artifact {name}{where}")
        return Artifact.from_row(row)

    def artifact_versions(self, task_id: str) -> list[Artifact]:
        """Every stored version of every artifact of the task, oldest first."""
        query = select(artifacts).where(artifacts.c.task_id == task_id).order_by(artifacts.c.id)
        with self._read() as conn:
            return [Artifact.from_row(row) for row in conn.execute(query)]

    def latest_artifacts(self, task_id: str) -> list[Artifact]:
        """The latest version of each of the task's artifacts, by name."""
        with self._read() as conn:
            rows = conn.execute(_LATEST_ARTIFACTS, {"task_id": task_id})
            return [Artifact.from_row(row) for row in rows]

    def rollback_feedback(self, task_id: str, round: int) -> Artifact | None:
        """The artifact that started `round` by sending the task back to development: the one
        its verdict judged, or, after a person's retry, the newest of the stage it failed in."""
        move = (
            select(events)
            .where(
                events.c.task_id == task_id,
                events.c.to_stage == Stage.DEVELOPMENT,
                events.c.round == round - 1,
                or_(
                    events.c.from_stage.in_(ROLLBACK_STAGES),
                    events.c.producer.in_(_ROLLBACK_PRODUCERS),
                ),
            )
            .order_by(events.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            event = conn.execute(move).first()
            if event is None:
                return None
            if event.job_id is not None:
                judged = artifacts.c.job_id == event.job_id
            else:
                pipeline = fetch_task(conn, task_id).pipeline
                judged = and_(
                    artifacts.c.task_id == task_id,
                    artifacts.c.name == pipeline.spec(event.from_stage).artifact,
                    artifacts.c.round == round - 1,
                )
            query = select(artifacts).where(judged).order_by(artifacts.c.id.desc()).limit(1)
            row = conn.execute(query).first()
        return Artifact.from_row(row) if row else None

    def _task(self, conn: Connection, task_id: str) -> Task:
        return fetch_task(conn, task_id)
