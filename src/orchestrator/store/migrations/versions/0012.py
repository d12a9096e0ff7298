"""Where a repo's test command writes its JUnit XML report (a suite that is not pytest: Jest,
Go, Maven...), so that the test report has counts and failing tests for it too.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("repos") as batch:
        batch.add_column(sa.Column("junit_path", sa.String(1024)))


def downgrade() -> None:
    with op.batch_alter_table("repos") as batch:
        batch.drop_column("junit_path")
