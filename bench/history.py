"""A stored history for the benchmarks: many tasks, as a long-lived installation holds them."""

from __future__ import annotations

from sqlalchemy import insert, text, update

from orchestrator.intake import new_task_id
from orchestrator.store import NewTask, RepoSpec, Store, tallies
from orchestrator.store.base import utcnow
from orchestrator.store.schema import agent_calls, events, jobs, tasks

ACTIVE_STAGES = ["analysis", "design", "development", "review", "testing", "deploy-staging"]
HISTORY = [  # the stage moves of a task that went through to done
    ("analysis", "design", "analyst"),
    ("design", "development", "architect"),
    ("development", "review", "developer"),
    ("review", "testing", "reviewer"),
    ("testing", "deploy-staging", "test-runner"),
    ("deploy-staging", "done", "staging-runner"),
]


def store_tasks(store: Store, count: int, active: int, repo_name: str = "bench") -> None:
    """`count` tasks; all but `active` are done, the active ones spread over the stages.

    Written straight into the tables, as a long-lived installation would hold them: going
    through the pipeline would take minutes for 10,000 tasks.
    """
    repo = store.add_repo(
        repo_name, RepoSpec(path=f"/nonexistent/{repo_name}", default_branch="main")
    )
    # Ids are random: at 100,000 two may meet (about 1 in 200), and the second insert fails.
    unique: set[str] = set()
    while len(unique) < count:
        unique.add(new_task_id())
    ids = sorted(unique)
    for task_id in ids:
        new = NewTask(task_id, repo.id, f"task {task_id}", "", f"orch/{task_id}", "/nonexistent")
        store.create_task(new, f"# task {task_id}\n")
    live, finished = ids[:active], ids[active:]
    now = utcnow()
    with store.engine.begin() as conn:
        for n, stage in enumerate(ACTIVE_STAGES):
            share = live[n :: len(ACTIVE_STAGES)]
            conn.execute(update(tasks).where(tasks.c.id.in_(share)).values(stage=stage))
            conn.execute(update(jobs).where(jobs.c.task_id.in_(share)).values(stage=stage))
        conn.execute(
            update(tasks)
            .where(tasks.c.id.not_in(live))
            .values(stage="deploy-staging", state="done")
        )
        conn.execute(
            update(jobs)
            .where(jobs.c.task_id.not_in(live))
            .values(status="done", producer="analyst", finished_at=now, duration_s=1.0)
        )
        history = [
            {"task_id": t, "from_stage": a, "to_stage": b, "producer": p, "round": 1, "at": now}
            for t in finished
            for a, b, p in HISTORY
        ]
        if history:  # none when every task is active
            conn.execute(insert(events), history)
        # An agent call for each LLM stage of a finished task: the usage /status sums.
        calls = [
            {
                "task_id": t,
                "call_site": "A1",
                "stage": a,
                "role": p,
                "round": 1,
                "backend": "claude",
                "error_kind": "ok",
                "tokens_in": 12_000,
                "tokens_out": 800,
                "cost_usd": 0.05,
                "at": now,
            }
            for t in finished
            for a, _, p in HISTORY
            if not p.endswith("-runner")
        ]
        if calls:
            conn.execute(insert(agent_calls), calls)
        tallies.recount(conn)  # the running totals a pipeline would have kept
    if store.dialect == "postgresql":
        # Loaded in bulk, the history leaves a dead index entry per job (each was inserted
        # queued, then updated done) that autovacuum would clear in a long-lived installation;
        # measured before it does, the claim reads 100,000 of them (docs/benchmarks.md).
        # And it leaves a few hundred megabytes of pages to write: written by the checkpoint
        # that would come during the measurement, they would count as the transitions' CPU.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            conn.execute(text("CHECKPOINT"))
