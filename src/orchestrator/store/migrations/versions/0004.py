"""API: events by producer and stage, for the determinization figures of /status.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_producer_from_stage", "events", ["producer", "from_stage"])


def downgrade() -> None:
    op.drop_index("ix_events_producer_from_stage", table_name="events")
