"""Initial schema: repos, tasks, jobs, events, artifacts, alerts.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
LIVE = sa.text("status IN ('queued', 'running', 'deferred')")


def upgrade() -> None:
    op.create_table(
        "repos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("default_branch", sa.String(255), nullable=False),
        sa.Column("test_target", sa.Text, nullable=False),
        sa.Column("test_command", sa.Text),
        sa.Column("staging_command", sa.Text),
        sa.Column("deploy_command", sa.Text),
        sa.Column("health_url", sa.Text),
        sa.Column("setup_command", sa.Text),
        sa.Column("skip_stages", sa.Text, nullable=False, server_default=""),
        sa.Column("is_self", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_repos"),
        sa.UniqueConstraint("name", name="uq_repos_name"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("repo_id", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("branch", sa.Text, nullable=False),
        sa.Column("worktree", sa.Text, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.ForeignKeyConstraint(["repo_id"], ["repos.id"], name="fk_tasks_repo_id_repos"),
    )
    op.create_index("ix_tasks_state_stage", "tasks", ["state", "stage"])
    op.create_index("ix_tasks_repo_id_state", "tasks", ["repo_id", "state"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("producer", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("infra_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("agent_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("not_before", TS),
        sa.Column("worker_id", sa.String(64)),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("pgid", sa.Integer),
        sa.Column("proc_started_at", sa.Float),
        sa.Column("lease_expires_at", TS),
        sa.Column("heartbeat_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("outcome", sa.String(32)),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("error_message", sa.Text),
        sa.Column("exit_code", sa.Integer),
        sa.Column("log_path", sa.Text),
        sa.Column("backend", sa.String(32)),
        sa.Column("tokens_in", sa.Integer),
        sa.Column("tokens_out", sa.Integer),
        sa.Column("cost_usd", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_jobs_task_id_tasks"),
    )
    op.create_index("ix_jobs_task_id", "jobs", ["task_id"])
    op.create_index("ix_jobs_status_not_before", "jobs", ["status", "not_before"])
    op.create_index(
        "uq_jobs_live_task", "jobs", ["task_id"], unique=True,
        sqlite_where=LIVE, postgresql_where=LIVE,
    )  # fmt: skip
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.Integer),
        sa.Column("from_stage", sa.String(32)),
        sa.Column("to_stage", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(32)),
        sa.Column("producer", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_events_task_id_tasks"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_events_job_id_jobs"),
        sa.UniqueConstraint("job_id", name="uq_events_job_id"),
    )
    op.create_index("ix_events_task_id_id", "events", ["task_id", "id"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.Integer),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("producer", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_artifacts_task_id_tasks"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_artifacts_job_id_jobs"),
    )
    op.create_index("ix_artifacts_task_id_name_id", "artifacts", ["task_id", "name", "id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_alerts_task_id_tasks"),
    )
    op.create_index("ix_alerts_acknowledged_at", "alerts", ["acknowledged_at"])


def downgrade() -> None:
    for table in ("alerts", "artifacts", "events", "jobs", "tasks", "repos"):
        op.drop_table(table)
