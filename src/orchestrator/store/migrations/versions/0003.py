"""Runners: alerts remember whether they reached the webhook.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("delivered_at")
