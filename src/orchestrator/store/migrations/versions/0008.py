"""Agent turns: how many model calls an agent's session took, as its CLI reports them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("jobs", "agent_calls"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("turns", sa.Integer))


def downgrade() -> None:
    for table in ("jobs", "agent_calls"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("turns")
