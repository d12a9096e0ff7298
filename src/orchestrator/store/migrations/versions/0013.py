"""The round a task's budget of returns to development counts from: 1, or the round a person
started with `orch task retry`, so that a retried task gets a fresh ORCH_MAX_DEV_RETRIES.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch): SQLite's batch mode would copy `tasks` and drop the old
    # table, which the foreign keys of existing jobs and events refuse.
    op.add_column(
        "tasks",
        sa.Column("budget_round", sa.Integer, nullable=False, server_default=sa.text("1")),
    )


def downgrade() -> None:
    op.drop_column("tasks", "budget_round")  # SQLite 3.35+ drops a column in place
