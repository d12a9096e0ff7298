"""Records: frozen snapshots of rows. A record never holds a session or saves itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from operator import itemgetter
from typing import Any

from orchestrator.pipeline.pipelines import BUILT_IN, Pipeline
from orchestrator.pipeline.stages import Producer, Stage, TaskState, as_stage, parse_stage_list

DEFAULT_TEST_TARGET = "tests"


@dataclass(frozen=True)
class RepoSpec:
    """What a user says about a repo when adding or changing it (None: keep or default)."""

    path: str | None = None
    default_branch: str | None = None
    test_target: str | None = None
    test_command: str | None = None
    staging_command: str | None = None
    deploy_command: str | None = None
    health_url: str | None = None
    setup_command: str | None = None
    skip_stages: frozenset[Stage] | None = None
    is_self: bool | None = None
    is_remote: bool | None = None
    junit_path: str | None = None


@dataclass(frozen=True)
class Repo:
    """A registered git repository and how to test, stage and deploy it."""

    id: int
    name: str
    path: str
    default_branch: str
    test_target: str
    test_command: str | None
    staging_command: str | None
    deploy_command: str | None
    health_url: str | None
    setup_command: str | None
    skip_stages: frozenset[Stage]
    is_self: bool
    created_at: datetime
    is_remote: bool = False
    junit_path: str | None = None  # relative to the worktree

    @classmethod
    def from_row(cls, row: Any) -> Repo:
        """Build from a `repos` row."""
        return cls.of(row._mapping)

    @classmethod
    def of(cls, columns: Mapping[str, Any]) -> Repo:
        """Build from the values of a `repos` row's columns, by name."""
        values = dict(columns)
        values["skip_stages"] = parse_stage_list(values["skip_stages"] or "")
        return cls(**values)


@dataclass(frozen=True)
class Task:
    """A unit of work on a repo, moving through the stages."""

    id: str
    repo: str
    title: str
    description: str
    stage: str  # a Stage, or a stage of the task's own pipeline
    state: TaskState
    round: int
    branch: str
    worktree: str
    reason: str | None
    gate_acquired_at: datetime | None
    setup_done_at: datetime | None
    created_at: datetime
    updated_at: datetime
    budget_round: int = 1  # the round its returns to development count from (see retry)
    pipeline: Pipeline = BUILT_IN  # the stages it runs (its repo's orch.toml when it started)

    @classmethod
    def from_row(cls, row: Any) -> Task:
        """Build from a `tasks` row joined with its repo's name as `repo`."""
        m = row._mapping
        return cls(
            id=m["id"],
            repo=m["repo"],
            title=m["title"],
            description=m["description"],
            stage=as_stage(m["stage"]),
            state=TaskState(m["state"]),
            round=m["round"],
            branch=m["branch"],
            worktree=m["worktree"],
            reason=m["reason"],
            gate_acquired_at=m["gate_acquired_at"],
            setup_done_at=m["setup_done_at"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            budget_round=m["budget_round"],
            pipeline=Pipeline.from_json(m["pipeline"]),
        )


@dataclass(frozen=True)
class Event:
    """One stage move in a task's append-only history."""

    id: int
    task_id: str
    job_id: int | None
    from_stage: str | None
    to_stage: str
    verdict: str | None
    producer: Producer
    round: int
    at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """Build from an `events` row."""
        values = dict(row._mapping)
        values["producer"] = Producer(values["producer"])
        return cls(**values)


@dataclass(frozen=True)
class Artifact:
    """One stored version of a task's Markdown artifact (the database copy is the truth)."""

    id: int
    task_id: str
    job_id: int | None
    name: str
    round: int
    producer: Producer
    text: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Artifact:
        """Build from an `artifacts` row."""
        values = dict(row._mapping)
        values["producer"] = Producer(values["producer"])
        return cls(**values)


@dataclass(frozen=True)
class Alert:
    """Something a person should hear about."""

    id: int
    task_id: str | None
    kind: str
    message: str
    created_at: datetime
    acknowledged_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Alert:
        """Build from an `alerts` row."""
        return cls(**dict(row._mapping))


class JobStatus(StrEnum):
    """The states of a job."""

    QUEUED = "queued"
    RUNNING = "running"
    DEFERRED = "deferred"  # waiting out a backoff before its next attempt
    DONE = "done"  # produced a verdict, or ended its task (blocked)
    ABANDONED = "abandoned"  # its worker died or stopped; a new job took its place
    CANCELLED = "cancelled"  # its task was cancelled


# A task has at most one live job (a partial unique index enforces it).
LIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEFERRED)


@dataclass(frozen=True)
class Job:
    """One attempt-carrying unit of work: a task's stage in one round."""

    id: int
    task_id: str
    stage: str  # a Stage, or a stage of the task's own pipeline
    round: int
    producer: str | None
    status: JobStatus
    attempt: int
    infra_failures: int
    agent_failures: int
    internal_failures: int
    not_before: datetime | None
    worker_id: str | None
    host: str | None
    pid: int | None
    pgid: int | None
    proc_started_at: float | None
    marker: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    error_kind: str | None
    error_message: str | None
    exit_code: int | None
    log_path: str | None
    backend: str | None
    tokens_in: int | None
    tokens_out: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost_usd: float | None
    turns: int | None
    duration_s: float | None

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """Build from a `jobs` row (extra columns of a join are ignored)."""
        m = row._mapping
        values = {name: m[name] for name in cls.__dataclass_fields__}
        values["stage"] = as_stage(values["stage"])
        values["status"] = JobStatus(values["status"])
        return cls(**values)

    @classmethod
    def from_rows(cls, rows: Sequence[Any]) -> list[Job]:
        """Build from the rows of one query: by position, the positions found once (/queue
        builds one per live job, and looking up 36 fields by name was half its time)."""
        if not rows:
            return []
        names = list(cls.__dataclass_fields__)
        take = itemgetter(*(rows[0]._fields.index(name) for name in names))
        stage, status = names.index("stage"), names.index("status")
        built = []
        for row in rows:
            values = list(take(row))
            values[stage] = as_stage(values[stage])
            values[status] = JobStatus(values[status])
            built.append(cls(*values))
        return built


@dataclass(frozen=True)
class JobMetrics:
    """What running a job measured, stored on its row when it ends."""

    producer: str
    outcome: str  # verdict, blocked, deferred, ...
    error_kind: str | None = None
    error_message: str | None = None
    exit_code: int | None = None
    log_path: str | None = None
    backend: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost_usd: float | None = None
    turns: int | None = None
    duration_s: float | None = None


class WorkerState(StrEnum):
    """Whether a worker process is alive, as the database sees it."""

    RUNNING = "running"
    STOPPED = "stopped"  # it stopped cleanly
    LOST = "lost"  # no heartbeat for a whole lease: killed, frozen, or cut off


@dataclass(frozen=True)
class Worker:
    """A running (or stopped, or lost) `orch worker` process."""

    id: str
    host: str
    pid: int
    proc_started_at: float
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    state: WorkerState

    @classmethod
    def from_row(cls, row: Any, now: datetime, lease_s: float) -> Worker:
        """Build from a `workers` row; `now` and the lease judge whether it is lost."""
        values = dict(row._mapping)
        if values["stopped_at"] is not None:
            state = WorkerState.STOPPED
        elif (now - values["heartbeat_at"]).total_seconds() > lease_s:
            state = WorkerState.LOST
        else:
            state = WorkerState.RUNNING
        return cls(**values, state=state)
