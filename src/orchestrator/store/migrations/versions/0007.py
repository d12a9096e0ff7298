"""Self-hosting: deploys of the orchestrator's own checkout, across its restart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "self_deploys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("old_commit", sa.String(64)),
        sa.Column("merged_commit", sa.String(64), nullable=False),
        sa.Column("new_commit", sa.String(64)),
        sa.Column("revert_commit", sa.String(64)),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_self_deploys"),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name="fk_self_deploys_task_id_tasks"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_self_deploys_job_id_jobs"),
    )
    op.create_index("ix_self_deploys_state", "self_deploys", ["state"])


def downgrade() -> None:
    op.drop_table("self_deploys")
