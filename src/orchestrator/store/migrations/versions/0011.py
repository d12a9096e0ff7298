"""One holder of the self repo: the `orch serve` that settles self deploys at boot and runs
them, under a lease, so that a second service on the same database never rolls back a
deploy the first one is restarting on.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "self_hold",
        sa.Column("name", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_self_hold"),
    )


def downgrade() -> None:
    op.drop_table("self_hold")
