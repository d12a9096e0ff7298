"""The store: the only code that talks to the database."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from orchestrator.settings import Settings
from orchestrator.store import migrate
from orchestrator.store.alerts import AlertQueries
from orchestrator.store.base import translate
from orchestrator.store.claims import Claimant
from orchestrator.store.engine import make_engine
from orchestrator.store.insights import Determinization, InsightQueries, RunnerActivity
from orchestrator.store.jobs import JobQueries
from orchestrator.store.records import (
    Alert,
    Artifact,
    Event,
    Job,
    JobMetrics,
    JobStatus,
    Repo,
    RepoSpec,
    Task,
    Worker,
)
from orchestrator.store.repos import RepoQueries
from orchestrator.store.self_deploys import SelfDeploy, SelfDeployQueries, SelfDeployState
from orchestrator.store.self_hold import SelfHold, SelfHoldQueries
from orchestrator.store.tasks import NewTask, TaskQueries
from orchestrator.store.usage import (
    AgentCall,
    StageUsage,
    UsageTally,
    average_tokens,
    usage_by_stage,
)
from orchestrator.store.verdicts import Verdict
from orchestrator.store.views import Counts, Queue, QueuedJob, SerialGate, ViewQueries
from orchestrator.store.workers import WorkerQueries


class Store(
    RepoQueries,
    TaskQueries,
    JobQueries,
    SelfDeployQueries,  # with LifecycleQueries, whose transactions it extends
    SelfHoldQueries,
    WorkerQueries,
    AlertQueries,
    ViewQueries,
    InsightQueries,  # with UsageQueries, whose usage totals it reads
):
    """The narrow interface every other module uses to read and change state."""

    def ensure_schema(self) -> None:
        """Bring the database up to the code's schema (a no-op when it is)."""
        try:
            migrate.ensure_schema(self.engine)
        except SQLAlchemyError as exc:
            raise translate(exc) from exc

    def schema_revision(self) -> str | None:
        """The revision the database is at (None: never migrated)."""
        try:
            with self.engine.connect() as conn:
                return migrate.current_revision(conn)
        except SQLAlchemyError as exc:
            raise translate(exc) from exc

    def integrity_problem(self) -> str | None:
        """What is damaged in a SQLite file (its pages, read whole by `PRAGMA quick_check`),
        or None; a PostgreSQL server checks its own pages."""
        if self.dialect != "sqlite":
            return None
        try:
            with self.engine.connect() as conn:
                found = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(3)")]
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        return None if found == ["ok"] else "; ".join(str(line) for line in found)

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Apply pending migrations; the revisions before and after."""
        try:
            return migrate.upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise translate(exc) from exc


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """Open the configured database, bringing its schema up to date on first use."""
    engine = make_engine(
        settings.database_url,
        parallel_jobs=settings.max_parallel_jobs,
        busy_timeout_s=settings.sqlite_busy_timeout_s,
    )
    store = Store(engine, lease_s=settings.lease_s)
    if migrate:
        try:
            store.ensure_schema()
        except BaseException:
            store.close()
            raise
    return store


__all__ = [
    "AgentCall",
    "Alert",
    "Artifact",
    "Claimant",
    "Counts",
    "Determinization",
    "Event",
    "Job",
    "JobMetrics",
    "JobStatus",
    "NewTask",
    "Queue",
    "QueuedJob",
    "Repo",
    "RepoSpec",
    "RunnerActivity",
    "SelfDeploy",
    "SelfDeployState",
    "SelfHold",
    "SerialGate",
    "StageUsage",
    "Store",
    "Task",
    "UsageTally",
    "Verdict",
    "Worker",
    "average_tokens",
    "open_store",
    "usage_by_stage",
]
