"""Running totals of the history (tasks by state, verdicts by producer and stage, agent usage
by stage and role), counted once from the rows already stored and from then on kept by the
transaction that moves a task or adds a verdict or an agent call; and an index for a runner's
latest jobs.

/status counted every task, event and agent call ever stored on each request: 40 ms at
100,000 tasks and growing with each one. The index the events' count read goes with it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

tasks = sa.table("tasks", sa.column("state", sa.String))
events = sa.table("events", sa.column("producer", sa.String), sa.column("from_stage", sa.String))
agent_calls = sa.table(
    "agent_calls",
    sa.column("stage", sa.String),
    sa.column("role", sa.String),
    sa.column("error_kind", sa.String),
    sa.column("tokens_in", sa.Integer),
    sa.column("tokens_out", sa.Integer),
    sa.column("cost_usd", sa.Float),
)


# The counts below are those of store/tallies.py `recount` as they stand at this revision:
# a migration never imports code that may change after it.


def upgrade() -> None:
    states = op.create_table(
        "task_tallies",
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tasks", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("state", name="pk_task_tallies"),
    )
    verdicts = op.create_table(
        "verdict_tallies",
        sa.Column("producer", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("verdicts", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("producer", "stage", name="pk_verdict_tallies"),
    )
    usage = op.create_table(
        "usage_tallies",
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("calls", sa.BigInteger, nullable=False),
        sa.Column("tokens_in", sa.BigInteger, nullable=False),
        sa.Column("tokens_out", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("measured_calls", sa.BigInteger, nullable=False),
        sa.Column("measured_tokens", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("stage", "role", name="pk_usage_tallies"),
    )
    op.execute(
        states.insert().from_select(
            ["state", "tasks"],
            sa.select(tasks.c.state, sa.func.count()).group_by(tasks.c.state),
        )
    )
    op.execute(
        verdicts.insert().from_select(
            ["producer", "stage", "verdicts"],
            sa.select(events.c.producer, events.c.from_stage, sa.func.count())
            .where(events.c.from_stage.is_not(None))
            .group_by(events.c.producer, events.c.from_stage),
        )
    )
    measured = sa.and_(agent_calls.c.error_kind == "ok", agent_calls.c.tokens_in.is_not(None))
    known_in = sa.func.coalesce(agent_calls.c.tokens_in, 0)
    known_out = sa.func.coalesce(agent_calls.c.tokens_out, 0)
    op.execute(
        usage.insert().from_select(
            [
                "stage",
                "role",
                "calls",
                "tokens_in",
                "tokens_out",
                "cost_usd",
                "measured_calls",
                "measured_tokens",
            ],
            sa.select(
                agent_calls.c.stage,
                agent_calls.c.role,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(agent_calls.c.tokens_in), 0),
                sa.func.coalesce(sa.func.sum(agent_calls.c.tokens_out), 0),
                sa.func.coalesce(sa.func.sum(agent_calls.c.cost_usd), 0.0),
                sa.func.count().filter(measured),
                sa.func.coalesce(sa.func.sum(known_in + known_out).filter(measured), 0),
            ).group_by(agent_calls.c.stage, agent_calls.c.role),
        )
    )
    op.drop_index("ix_events_producer_from_stage", table_name="events")
    op.create_index("ix_jobs_producer_id", "jobs", ["producer", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_producer_id", table_name="jobs")
    op.create_index("ix_events_producer_from_stage", "events", ["producer", "from_stage"])
    op.drop_table("usage_tallies")
    op.drop_table("verdict_tallies")
    op.drop_table("task_tallies")
