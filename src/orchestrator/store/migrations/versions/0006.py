"""Scale-out: repos that live elsewhere (a URL or a bare repository).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repos") as batch:
        batch.add_column(
            sa.Column("is_remote", sa.Boolean, nullable=False, server_default=sa.text("false"))
        )


def downgrade() -> None:
    with op.batch_alter_table("repos") as batch:
        batch.drop_column("is_remote")
