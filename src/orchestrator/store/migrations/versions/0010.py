"""Whether a self deploy's command is still running gets a column of its own, where a
sentinel text in the note column said so: a note is prose for people, never a flag.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The note that meant "the deploy command has not finished" up to 0009.
SENTINEL = "The service stopped before the deploy command finished."

self_deploys = sa.table(
    "self_deploys", sa.column("note", sa.Text), sa.column("command_running", sa.Boolean)
)


def upgrade() -> None:
    with op.batch_alter_table("self_deploys") as batch:
        batch.add_column(
            sa.Column(
                "command_running", sa.Boolean, nullable=False, server_default=sa.text("false")
            )
        )
    op.execute(
        self_deploys.update()
        .where(self_deploys.c.note == SENTINEL)
        .values(command_running=True, note="")
    )


def downgrade() -> None:
    op.execute(
        self_deploys.update().where(self_deploys.c.command_running.is_(True)).values(note=SENTINEL)
    )
    with op.batch_alter_table("self_deploys") as batch:
        batch.drop_column("command_running")
