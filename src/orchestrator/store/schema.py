"""The database tables. Alembic migrations create them; this metadata is what code queries.

A test compares this metadata with a freshly migrated database, so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC, which also sorts correctly as text.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "postgresql":
            return super().result_processor(dialect, coltype)

        # One call per value, not TypeDecorator's three. psycopg reads a timestamp aware, in
        # the session's zone, and the store's sessions run in UTC (store/engine.py): this
        # is an identity check on almost every value (/queue reads a thousand of them).
        def process(value: datetime | None) -> datetime | None:
            return value if value is None or value.tzinfo is UTC else value.astimezone(UTC)

        return process


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

repos = Table(
    "repos",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("path", Text, nullable=False),
    Column("default_branch", String(255), nullable=False),
    Column("test_target", Text, nullable=False),
    Column("test_command", Text),  # NULL: `python -m pytest <test_target>`
    Column("staging_command", Text),
    Column("deploy_command", Text),
    Column("health_url", Text),
    Column("setup_command", Text),
    Column("skip_stages", Text, nullable=False, server_default=""),
    Column("is_self", Boolean, nullable=False, server_default=text("false")),
    # A URL or bare repository: each worker works in its own clone (workspace/checkout.py).
    Column("is_remote", Boolean, nullable=False, server_default=text("false")),
    Column("junit_path", String(1024)),  # a JUnit XML report the test command writes
    Column("created_at", UTCDateTime, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("repo_id", Integer, ForeignKey("repos.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("stage", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("round", Integer, nullable=False, server_default=text("1")),
    # The round its budget of returns to development counts from (a retry starts a new one).
    Column("budget_round", Integer, nullable=False, server_default=text("1")),
    Column("pipeline", Text, nullable=True),  # orch.toml's stages as JSON; NULL: built-in
    Column("branch", Text, nullable=False),
    Column("worktree", Text, nullable=False),
    Column("reason", Text),  # why the task is blocked or failed, for people
    # Set while the task holds its repo's serial gate (deploy-staging to end of post-deploy).
    Column("gate_acquired_at", UTCDateTime),
    Column("setup_done_at", UTCDateTime),  # the repo's setup command ran in the worktree
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "state", "stage"),
    Index(None, "repo_id", "state"),
    Index(None, "updated_at"),  # the latest change, for the dashboard's change token (0016)
    Index(
        "uq_tasks_serial_gate",
        "repo_id",
        unique=True,
        sqlite_where=text("gate_acquired_at IS NOT NULL"),
        postgresql_where=text("gate_acquired_at IS NOT NULL"),
    ),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("proc_started_at", Float, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
)

# One row at most: the `orch serve` that holds the self repo (store/self_hold.py).
self_hold = Table(
    "self_hold",
    metadata,
    Column("name", String(16), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("lease_expires_at", UTCDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(40), ForeignKey("tasks.id"), nullable=False),
    Column("stage", String(32), nullable=False),
    Column("round", Integer, nullable=False),
    Column("producer", String(32)),
    Column("status", String(16), nullable=False),
    # Bumped at every claim: the fencing token a worker must still hold to commit a result.
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("infra_failures", Integer, nullable=False, server_default=text("0")),
    Column("agent_failures", Integer, nullable=False, server_default=text("0")),
    # Faults in the orchestrator's own code while running the job (revision 0009).
    Column("internal_failures", Integer, nullable=False, server_default=text("0")),
    Column("not_before", UTCDateTime),  # a deferred job waits until then
    Column("worker_id", String(64)),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("pgid", Integer),
    Column("proc_started_at", Float),  # psutil create_time: a reused pid is not our process
    Column("marker", Text),  # in every descendant's environment: finds escaped processes
    Column("lease_expires_at", UTCDateTime),
    Column("heartbeat_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("outcome", String(32)),
    Column("error_kind", String(32)),
    Column("error_message", Text),
    Column("exit_code", Integer),
    Column("log_path", Text),
    Column("backend", String(32)),
    Column("tokens_in", Integer),
    Column("tokens_out", Integer),
    Column("cache_read_tokens", Integer),
    Column("cache_write_tokens", Integer),
    Column("cost_usd", Float),
    Column("turns", Integer),  # model calls in the agent's session (revision 0008)
    Column("duration_s", Float),
    Index(None, "task_id"),
    Index(None, "status", "not_before"),
    Index(None, "producer", "id"),  # a runner's latest jobs, newest first (/queue)
    # The latest start and end, for the dashboard's change token (revision 0016).
    Index(None, "started_at"),
    Index(None, "finished_at"),
    # A task has at most one live job: the database, not the scheduler, guarantees it.
    Index(
        "uq_jobs_live_task",
        "task_id",
        unique=True,
        sqlite_where=text("status IN ('queued', 'running', 'deferred')"),
        postgresql_where=text("status IN ('queued', 'running', 'deferred')"),
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(40), ForeignKey("tasks.id"), nullable=False),
    # One event per job at most: a verdict can never be recorded twice.
    Column("job_id", Integer, ForeignKey("jobs.id"), unique=True),
    Column("from_stage", String(32)),
    Column("to_stage", String(32), nullable=False),
    Column("verdict", String(32)),
    Column("producer", String(32), nullable=False),
    Column("round", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index(None, "task_id", "id"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(40), ForeignKey("tasks.id"), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id")),
    Column("name", String(128), nullable=False),
    Column("round", Integer, nullable=False),
    Column("producer", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "task_id", "name", "id"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(40), ForeignKey("tasks.id")),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),  # posted to ORCH_ALERT_WEBHOOK_URL
    Index(None, "acknowledged_at"),
)

# One row per agent call (retries and the failure summary included): usage and budgets.
agent_calls = Table(
    "agent_calls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(40), ForeignKey("tasks.id"), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id")),
    Column("call_site", String(8), nullable=False),  # A1..A7 (governance/call_sites.py)
    Column("stage", String(32), nullable=False),
    Column("role", String(32), nullable=False),
    Column("round", Integer, nullable=False),
    Column("backend", String(32), nullable=False),
    Column("error_kind", String(32), nullable=False),
    Column("tokens_in", Integer),
    Column("tokens_out", Integer),
    Column("cache_read_tokens", Integer),
    Column("cache_write_tokens", Integer),
    Column("cost_usd", Float),
    Column("turns", Integer),  # model calls in the agent's session (revision 0008)
    Column("duration_s", Float),
    Column("at", UTCDateTime, nullable=False),
    Index(None, "task_id"),
    Index(None, "at"),
)

# Running totals of the history, kept in the transaction that adds to it (store/tallies.py):
# /status and the dashboard read a few rows here, at 200 stored tasks as at 100,000, where
# counting the tasks, events and agent calls themselves grows with every task ever run. A row
# is an addition to the total of its key (a reader sums them; a worker folds them into one),
# so its id counts every addition ever made: 64 bits.
_ADDITION_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid is 64-bit already

task_tallies = Table(
    "task_tallies",
    metadata,
    Column("id", _ADDITION_ID, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("tasks", BigInteger, nullable=False),
)

verdict_tallies = Table(
    "verdict_tallies",
    metadata,
    Column("id", _ADDITION_ID, primary_key=True),
    Column("producer", String(32), nullable=False),
    Column("stage", String(32), nullable=False),  # the stage the verdict was given on
    Column("verdicts", BigInteger, nullable=False),
)

usage_tallies = Table(
    "usage_tallies",
    metadata,
    Column("id", _ADDITION_ID, primary_key=True),
    Column("stage", String(32), nullable=False),
    Column("role", String(32), nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("tokens_in", BigInteger, nullable=False),  # unknown counts count as 0
    Column("tokens_out", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    # The calls that succeeded and reported their tokens, and those tokens (in plus out): the
    # mean an LLM call costs, which a runner's verdict saves.
    Column("measured_calls", BigInteger, nullable=False),
    Column("measured_tokens", BigInteger, nullable=False),
)

# A deploy of the orchestrator's own checkout: recorded before the restart, completed by the
# restarted process at boot (pending -> completed -> healthy), or rolled back.
self_deploys = Table(
    "self_deploys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task_id", String(40), ForeignKey("tasks.id"), nullable=False),
    Column("job_id", Integer, ForeignKey("jobs.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("old_commit", String(64)),
    Column("merged_commit", String(64), nullable=False),
    Column("new_commit", String(64)),
    Column("revert_commit", String(64)),
    Column("note", Text, nullable=False, server_default=""),
    # Recorded before the branch moves, until the job asks for the restart: a boot that
    # still finds it set knows the service stopped while the deploy command ran.
    Column("command_running", Boolean, nullable=False, server_default=text("false")),
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index(None, "state"),
)
