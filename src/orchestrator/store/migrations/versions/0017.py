"""The running totals become rows of additions: a transaction inserts what it adds, a reader
sums each key's rows, and a worker folds them into one now and then (store/tallies.py).

With one row per key updated in place, each verdict on a stage held that row locked until it
committed, and the next waited: eight workers queued on one row. An insert locks nothing.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The tables as they stand at this revision: a migration never imports code that may change.
KEYS = {
    "task_tallies": (("state", sa.String(16)),),
    "verdict_tallies": (("producer", sa.String(32)), ("stage", sa.String(32))),
    "usage_tallies": (("stage", sa.String(32)), ("role", sa.String(32))),
}
FIGURES = {
    "task_tallies": (("tasks", sa.BigInteger),),
    "verdict_tallies": (("verdicts", sa.BigInteger),),
    "usage_tallies": (
        ("calls", sa.BigInteger),
        ("tokens_in", sa.BigInteger),
        ("tokens_out", sa.BigInteger),
        ("cost_usd", sa.Float),
        ("measured_calls", sa.BigInteger),
        ("measured_tokens", sa.BigInteger),
    ),
}


def _remake(name: str, columns: Sequence[sa.Column[Any]], *constraints: sa.Constraint) -> None:
    """Make table `name` again with `columns`, keeping its totals (summed by key: a few rows)."""
    keys = [k for k, _ in KEYS[name]]
    figures = [f for f, _ in FIGURES[name]]
    old = sa.table(name, *(sa.column(c) for c in (*keys, *figures)))
    totals = [
        dict(row._mapping)
        for row in op.get_bind().execute(
            sa.select(
                *(old.c[k] for k in keys), *(sa.func.sum(old.c[f]).label(f) for f in figures)
            ).group_by(*(old.c[k] for k in keys))
        )
    ]
    op.drop_table(name)
    table = op.create_table(name, *columns, *constraints)
    if totals:
        op.bulk_insert(table, totals)


def upgrade() -> None:
    for name in KEYS:
        _remake(
            name,
            [
                sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), nullable=False),
                *(sa.Column(c, t, nullable=False) for c, t in (*KEYS[name], *FIGURES[name])),
            ],
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        )


def downgrade() -> None:
    for name in KEYS:
        _remake(
            name,
            [sa.Column(c, t, nullable=False) for c, t in (*KEYS[name], *FIGURES[name])],
            sa.PrimaryKeyConstraint(*(k for k, _ in KEYS[name]), name=f"pk_{name}"),
        )
