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
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, delete, func, select
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


@dataclass
class Pending:
    """What one transaction adds to the totals, until its end."""

    tasks: Counter[str] = field(default_factory=Counter)
    verdicts: Counter[tuple[str, str]] = field(default_factory=Counter)
    usage: dict[tuple[str, str], list[float]] = field(default_factory=dict)


def _pending(conn: Connection) -> Pending:
    found = conn.info.get(_PENDING)
    if found is None:
        found = conn.info[_PENDING] = Pending()
    return found


def count_task(conn: Connection, before: str | None, after: str) -> None:
    """A task moved from state `before` (None: it is new) to `after`, when this transaction
    commits. The caller's update must have matched the task in state `before`."""
    pending = _pending(conn).tasks
    if before is not None:
        pending[str(before)] -= 1
    pending[str(after)] += 1


def count_verdict(conn: Connection, producer: str, stage: str) -> None:
    """One more verdict of `producer` on `stage`, when this transaction commits."""
    _pending(conn).verdicts[(producer, stage)] += 1


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
    tokens = (tokens_in or 0) + (tokens_out or 0)
    added = (1, tokens_in or 0, tokens_out or 0, cost_usd or 0.0, int(measured))
    figures = [*added, tokens if measured else 0]
    totals = _pending(conn).usage.setdefault((stage, role), [0] * len(USAGE_FIGURES))
    for n, value in enumerate(figures):
        totals[n] += value


def discard(conn: Connection) -> None:
    """Forget what this connection's last transaction would have added (it rolled back)."""
    conn.info.pop(_PENDING, None)


def flush(conn: Connection) -> None:
    """Add this transaction's counts to the totals: its last statements, in key order."""
    pending = conn.info.pop(_PENDING, None)
    if pending is None:
        return
    upsert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    for state, n in sorted(pending.tasks.items()):
        if n == 0:
            continue  # moved out and back in: nothing to lock
        statement = upsert(task_tallies).values(state=state, tasks=n)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["state"],
                set_={"tasks": task_tallies.c.tasks + statement.excluded.tasks},
            )
        )
    for (producer, stage), n in sorted(pending.verdicts.items()):
        statement = upsert(verdict_tallies).values(producer=producer, stage=stage, verdicts=n)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["producer", "stage"],
                set_={"verdicts": verdict_tallies.c.verdicts + statement.excluded.verdicts},
            )
        )
    for (stage, role), figures in sorted(pending.usage.items()):
        added = dict(zip(USAGE_FIGURES, figures, strict=True))
        statement = upsert(usage_tallies).values(stage=stage, role=role, **added)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["stage", "role"],
                set_={
                    name: usage_tallies.c[name] + statement.excluded[name] for name in USAGE_FIGURES
                },
            )
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
