"""Running totals of the history: tasks by state, verdicts by producer and stage, agent usage by
stage and role.

/status, /metrics and the dashboard show what the pipeline has done since it was installed.
Counted from the tasks, events and agent calls on each request, that cost grows with every task
ever run (40 ms at 100,000 tasks); read from these totals, it is a few rows at any size.

A total is kept in the transaction that adds to it, so it can never disagree with the rows it
counts: a move, verdict or call that rolls back was never counted. A state move is counted
only by an update that matched the task in the state it counts it out of.

A table of totals holds additions: a transaction inserts a row of what it adds (`flush`, its
last statement; on PostgreSQL a verdict's are part of its one statement, store/verdicts.py),
and a reader sums the rows of each key (`summed`). An insert locks nothing.
One row per key, updated in place, was locked from the update to the commit: every verdict on
a stage waited for the one before it to commit, eight workers in a queue on one row. `fold`,
run by each worker's heartbeat, sums each key's rows into one, so a read sums a few rows.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

from sqlalchemy import (
    Column,
    Connection,
    Subquery,
    Table,
    and_,
    cast,
    delete,
    func,
    insert,
    select,
    tuple_,
)

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
# Each table of totals by the columns that name one of its totals, then those of its figures.
_KEYS = {
    task_tallies.name: (task_tallies, ("state",), ("tasks",)),
    verdict_tallies.name: (verdict_tallies, ("producer", "stage"), ("verdicts",)),
    usage_tallies.name: (usage_tallies, ("stage", "role"), USAGE_FIGURES),
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
    """Add this transaction's counts to the totals: a row of additions for each total it
    changed, in one insert per table."""
    pending: dict[tuple[str, tuple[str, ...]], Counter[str]] = conn.info.pop(_PENDING, {})
    rows: dict[str, list[dict[str, object]]] = {}
    for (name, key), figures in pending.items():
        if not any(figures.values()):
            continue  # a task moved out of a state and back in: nothing to add
        _table, keys, names = _KEYS[name]
        rows.setdefault(name, []).append(_row(keys, key, names, figures))
    for name, additions in rows.items():
        conn.execute(insert(_KEYS[name][0]), additions)


def _row(
    keys: tuple[str, ...], key: tuple[object, ...], names: tuple[str, ...], figures: Counter[str]
) -> dict[str, object]:
    """A row of a table of totals: the key's columns, then each figure (0 when not added to)."""
    row: dict[str, object] = dict(zip(keys, key, strict=True))
    row.update((name, figures[name]) for name in names)
    return row


@cache
def summed(table: Table) -> Subquery:
    """The totals of `table`, one row per key: its rows of additions summed (what a reader
    selects from, by the table's own column names)."""
    _table, keys, names = _KEYS[table.name]
    columns: list[Column[object]] = [table.c[k] for k in keys]
    # Cast back: PostgreSQL sums a bigint into a numeric.
    sums = [cast(func.sum(table.c[f]), table.c[f].type).label(f) for f in names]
    return select(*columns, *sums).group_by(*columns).subquery(f"{table.name}_summed")


def fold(conn: Connection) -> int:
    """Sum each key's rows of additions into one row (a worker's heartbeat does, so that a
    reader sums a few rows at any age); how many rows went. Two folds at once on PostgreSQL
    each sum only the rows their own delete took: the second waits for the first's rows and
    skips them once gone. Additions made meanwhile are not seen, and stay for the next."""
    gone = 0
    for table, keys, names in _KEYS.values():
        key = [table.c[k] for k in keys]
        spread = select(*key).group_by(*key).having(func.count() > 1)  # keys of several rows
        taken = conn.execute(
            delete(table)
            .where(tuple_(*key).in_(spread))
            .returning(*key, *(table.c[f] for f in names))
        ).all()
        sums: dict[tuple[object, ...], Counter[str]] = {}
        for row in taken:
            sums.setdefault(tuple(row[: len(keys)]), Counter()).update(
                dict(zip(names, row[len(keys) :], strict=True))
            )
        folded = [_row(keys, k, names, f) for k, f in sums.items() if any(f.values())]
        if folded:
            conn.execute(insert(table), folded)
        gone += len(taken) - len(folded)
    return gone


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
