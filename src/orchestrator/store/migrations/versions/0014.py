"""The pipeline a task keeps: its repo's `orch.toml` as read when the task started (NULL: the
built-in pipeline), so that a later edit of the file, or an agent's edit in the task's own
branch, never changes the stages of a task under way.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, as in 0013: batch mode on SQLite would drop `tasks`.
    op.add_column("tasks", sa.Column("pipeline", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "pipeline")
