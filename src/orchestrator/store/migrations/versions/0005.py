"""Governance: one row per agent call, for usage accounting and budgets.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.Integer),
        sa.Column("call_site", sa.String(8), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=False),
        sa.Column("tokens_in", sa.Integer),
        sa.Column("tokens_out", sa.Integer),
        sa.Column("cache_read_tokens", sa.Integer),
        sa.Column("cache_write_tokens", sa.Integer),
        sa.Column("cost_usd", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agent_calls"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_agent_calls_task_id_tasks"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_agent_calls_job_id_jobs"),
    )
    op.create_index("ix_agent_calls_task_id", "agent_calls", ["task_id"])
    op.create_index("ix_agent_calls_at", "agent_calls", ["at"])


def downgrade() -> None:
    op.drop_table("agent_calls")
