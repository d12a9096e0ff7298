"""Execution: workers, the serial gate and setup marks on tasks, process and usage on jobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
HOLDS_GATE = sa.text("gate_acquired_at IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("proc_started_at", sa.Float, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("stopped_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("gate_acquired_at", TS))
        batch.add_column(sa.Column("setup_done_at", TS))
    op.create_index(
        "uq_tasks_serial_gate",
        "tasks",
        ["repo_id"],
        unique=True,
        sqlite_where=HOLDS_GATE,
        postgresql_where=HOLDS_GATE,
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("marker", sa.Text))
        batch.add_column(sa.Column("cache_read_tokens", sa.Integer))
        batch.add_column(sa.Column("cache_write_tokens", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cache_write_tokens")
        batch.drop_column("cache_read_tokens")
        batch.drop_column("marker")
    op.drop_index("uq_tasks_serial_gate", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("setup_done_at")
        batch.drop_column("gate_acquired_at")
    op.drop_table("workers")
