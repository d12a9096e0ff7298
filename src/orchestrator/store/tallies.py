"""Running totals of the history: tasks by state, verdicts by producer and stage, agent usage by
stage and role.

/status, /metrics and the dashboard show what the pipeline has done since it was installed.
Counted from the tasks, events and agent calls on each request, that cost grows with every task
ever run (40 ms at 100,000 tasks); read from these totals, it is a few rows at any size.

A total is kept in the transaction that adds to it, so it can never disagree with the rows it
counts: a move, verdict or call that rolls back was never counted. A state move is counted
only by an update that matched the task in the state it counts it out of. The additions wait
until the transaction's last statement (`flush`, called by the store's `_write`) and go in
one fixed order: a total's row is locked from its update until the commit, and a transaction
that took it early could wait on another (a serial gate) that waits on the total, a deadlock.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

from sqlalchemy import Connection, Insert, Table, and_, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from orchestrator.store.schema import (
    agent_calls,
    events,
    task_tallies,
    tasks,
    usage_tallies,
    verdict_tallies,
)

_PENDING = "orch_pending_tallies"
USAGE_FIGURES = (
    "calls",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "measured_calls",
    "measured_tokens",
)
# Each table of totals by the columns that name one of its rows.
_KEYS = {
    table.name: (table, tuple(column.name for column in table.primary_key))
    for table in (task_tallies, verdict_tallies, usage_tallies)
}


def _add(conn: Connection, table: Table, key: tuple[str, ...], figures: dict[str, float]) -> None:
    """Add `figures` to the row `key` of `table` when this transaction commits."""
    pending: dict[tuple[str, tuple[str, ...]], Counter[str]] = conn.info.setdefault(_PENDING, {})
    pending.setdefault((table.name, key), Counter()).update(figures)


def count_task(conn: Connection, before: str | None, after: str) -> None:
    """A task moved from state `before` (None: it is new) to `after`, when this transaction
    commits. The caller's update must have matched the task in state `before`."""
    if before is not None:
        _add(conn, task_tallies, (str(before),), {"tasks": -1})
    _add(conn, task_tallies, (str(after),), {"tasks": 1})


def count_verdict(conn: Connection, producer: str, stage: str) -> None:
    """One more verdict of `producer` on `stage`, when this transaction commits."""
    _add(conn, verdict_tallies, (producer, stage), {"verdicts": 1})


def count_call(
    conn: Connection,
    *,
    stage: str,
    role: str,
    ok: bool,
    tokens_in: int | None,
    tokens_out: int | None,
    cost_usd: float | None,
) -> None:
    """One more agent call, when this transaction commits. A call that succeeded and reported
    its tokens is measured: the mean of those is what an LLM call costs."""
    measured = ok and tokens_in is not None
    known_in, known_out = tokens_in or 0, tokens_out or 0
    figures = {
        "calls": 1,
        "tokens_in": known_in,
        "tokens_out": known_out,
        "cost_usd": cost_usd or 0.0,
        "measured_calls": int(measured),
        "measured_tokens": known_in + known_out if measured else 0,
    }
    _add(conn, usage_tallies, (stage, role), figures)


def discard(conn: Connection) -> None:
    """Forget what this connection's last transaction would have added (it rolled back)."""
    conn.info.pop(_PENDING, None)


def flush(conn: Connection) -> None:
    """Add this transaction's counts to the totals: its last statements, in key order."""
    pending: dict[tuple[str, tuple[str, ...]], Counter[str]] = conn.info.pop(_PENDING, {})
    for (name, key), figures in sorted(pending.items()):
        if not any(figures.values()):
            continue  # a task moved out of a state and back in: nothing to lock
        _table, columns = _KEYS[name]
        row = {**dict(zip(columns, key, strict=True)), **figures}
        conn.execute(_upsert(conn.dialect.name, name, tuple(figures)), row)


@cache
def _upsert(dialect: str, name: str, figures: tuple[str, ...]) -> Insert:
    # Built once per kind of row: every verdict runs one to three of them, and building and
    # keying a statement costs more of the worker's time than sending it.
    table, columns = _KEYS[name]
    upsert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(table).values({column: bindparam(column) for column in (*columns, *figures)})
    return statement.on_conflict_do_update(
        index_elements=list(columns),
        set_={figure: table.c[figure] + statement.excluded[figure] for figure in figures},
    )


def recount(conn: Connection) -> None:
    """Count the totals afresh from the tasks, events and agent calls stored (a bulk load that wrote
    them directly; a check that the running totals agree)."""
    conn.execute(delete(task_tallies))
    conn.execute(
        task_tallies.insert().from_select(
            ["state", "tasks"], select(tasks.c.state, func.count()).group_by(tasks.c.state)
        )
    )
    conn.execute(delete(verdict_tallies))
    conn.execute(delete(usage_tallies))
    conn.execute(
        verdict_tallies.insert().from_select(
            ["producer", "stage", "verdicts"],
            select(events.c.producer, events.c.from_stage, func.count())
            .where(events.c.from_stage.is_not(None))
            .group_by(events.c.producer, events.c.from_stage),
        )
    )
    measured = and_(agent_calls.c.error_kind == "ok", agent_calls.c.tokens_in.is_not(None))
    known_in = func.coalesce(agent_calls.c.tokens_in, 0)
    known_out = func.coalesce(agent_calls.c.tokens_out, 0)
    conn.execute(
        usage_tallies.insert().from_select(
            ["stage", "role", *USAGE_FIGURES],
            select(
                agent_calls.c.stage,
                agent_calls.c.role,
                func.count(),
                func.coalesce(func.sum(agent_calls.c.tokens_in), 0),
                func.coalesce(func.sum(agent_calls.c.tokens_out), 0),
                func.coalesce(func.sum(agent_calls.c.cost_usd), 0.0),
                func.count().filter(measured),
                func.coalesce(func.sum(known_in + known_out).filter(measured), 0),
            ).group_by(agent_calls.c.stage, agent_calls.c.role),
        )
    )
