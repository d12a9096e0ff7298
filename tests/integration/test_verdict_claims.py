"""A verdict claims the next job of the slot its job frees, in its own transaction
(`Store.finish_job` with a `Claimant`, store/claims.py), on both backends: the oldest task's
job first, started after the ended job finished; and on PostgreSQL, a job the verdict queued
and claimed itself wakes no other worker, while one it leaves queued does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import psycopg
from sqlalchemy import text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.pipeline.transitions import Transition
from orchestrator.store import Claimant, JobStatus, Store
from orchestrator.store.base import JOBS_CHANNEL
from orchestrator.store.claims import _candidates, _take_oldest, claim
from orchestrator.store.schema import jobs, tasks
from tests.integration.test_leases import add_task, move_to, verdict
from tests.integration.test_tallies import add_tasks, analysed

ME = Claimant("w-1", "here", 30.0)


def test_a_verdict_claims_the_job_it_queued(store: Store) -> None:
    add_tasks(store, "aaaa", 1)
    [job] = store.claim_jobs("w-1", "here", 1, 30)

    following = store.finish_job(analysed(job), ME)

    assert following is not None
    assert (following.task_id, following.stage) == ("aaaa0000", Stage.DESIGN)
    assert (following.status, following.worker_id, following.attempt) == (
        JobStatus.RUNNING, "w-1", 1,
    )  # fmt: skip
    [ended, started] = store.task_jobs("aaaa0000")
    assert ended.status == JobStatus.DONE
    assert ended.finished_at is not None and started.started_at is not None
    assert ended.finished_at <= started.started_at  # it started after the job ended
    assert [j.id for j in store.running_jobs()] == [following.id]


def test_a_verdict_claims_an_older_tasks_job_before_the_one_it_queued(store: Store) -> None:
    add_tasks(store, "aaaa", 2)
    older, younger = store.claim_jobs("w-1", "here", 2, 30)
    assert older.task_id < younger.task_id
    store.finish_job(analysed(older))  # its design job waits, unclaimed

    following = store.finish_job(analysed(younger), ME)

    assert following is not None
    assert (following.task_id, following.stage) == (older.task_id, Stage.DESIGN)
    waiting = [j for j in store.task_jobs(younger.task_id) if j.status == JobStatus.QUEUED]
    assert [j.stage for j in waiting] == [Stage.DESIGN]


def test_a_verdict_that_finds_nothing_runnable_claims_nothing(store: Store) -> None:
    add_tasks(store, "aaaa", 1)
    [job] = store.claim_jobs("w-1", "here", 1, 30)
    lost = Transition(Stage.ANALYSIS, TaskState.FAILED, 1, "failed", alert="failed")

    assert store.finish_job(replace(analysed(job), transition=lost), ME) is None
    assert store.running_jobs() == []


def test_a_one_job_claim_takes_the_gate_for_the_oldest_or_passes_it_over(store: Store) -> None:
    # PostgreSQL takes one job in one statement unless the oldest needs its repo's serial
    # gate (store/claims.py, `_take_oldest`): then the whole claim decides, as on SQLite.
    for task_id in ("aaaa1111", "bbbb2222", "cccc3333"):
        add_task(store, task_id)
    for task_id in ("aaaa1111", "bbbb2222"):
        move_to(store, task_id, Stage.DEPLOY_STAGING)
    [holder] = store.claim_jobs("w-1", "here", 1, 30)  # the oldest takes the free gate
    assert (holder.task_id, holder.stage) == ("aaaa1111", Stage.DEPLOY_STAGING)
    assert store.get_task("aaaa1111").gate_acquired_at is not None
    [passed_over] = store.claim_jobs("w-1", "here", 1, 30)  # bbbb2222 waits for the gate
    assert (passed_over.task_id, passed_over.stage) == ("cccc3333", Stage.ANALYSIS)
    assert store.claim_jobs("w-1", "here", 1, 30) == []
    assert store.get_task("bbbb2222").gate_acquired_at is None


def test_a_one_job_claim_leaves_a_gated_job_it_did_not_take_unlocked(pg_store: Store) -> None:
    # A claim that passes over the oldest job (its gate is held) must not hold it locked till
    # it commits: the gate's holder may finish meanwhile, and a concurrent claim that
    # skipped the job would leave it to the next poll (the lost wake-up of SPEC section 6).
    store = pg_store
    for task_id in ("aaaa1111", "bbbb2222"):
        move_to(store, add_task(store, task_id), Stage.DEPLOY_STAGING)
    [holder] = store.claim_jobs("w-1", "here", 1, 30)
    with store.engine.connect() as other, other.begin():  # a claim still in its transaction
        assert claim(other, Claimant("w-2", "there", 30.0), 1) == []
        done = Transition(Stage.DEPLOY_STAGING, TaskState.DONE, 1, "done")
        store.finish_job(verdict(holder, done))  # the gate is free
        [taken] = store.claim_jobs("w-3", "here", 1, 30)
    assert (taken.task_id, taken.stage) == ("bbbb2222", Stage.DEPLOY_STAGING)


def test_a_claim_finds_tasks_by_their_key_under_statistics_from_a_quiet_spell(
    pg_store: Store,
) -> None:
    # Statistics taken when no task was active (a long-lived installation's may be), then
    # 50 tasks become active: the claim must look each runnable job's task up by its key,
    # not read every active task again for each job (4.7 ms a claim at 100,000 tasks), and
    # lock the job it takes by its key.
    store = pg_store
    add_tasks(store, "dddd", 1000)
    with store.engine.begin() as conn:
        conn.execute(update(tasks).values(state=TaskState.DONE))
        conn.execute(update(jobs).values(status=JobStatus.DONE))
        conn.execute(text("ANALYZE tasks"))
        conn.execute(text("ANALYZE jobs"))
    add_tasks(store, "llll", 50)
    dialect = postgresql.dialect()
    for statement in (_take_oldest(False), _candidates(True, False)):
        compiled = statement.compile(dialect=dialect)
        values = {**compiled.params, "c_worker": "w", "c_host": "h", "c_lease_s": "30 s"}
        with store.engine.connect() as conn:
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}", values))
        assert "pk_tasks" in plan and "ix_tasks_state_stage" not in plan, plan
        if "CTE held" in plan:  # and the job it takes by the job's key, not among the live
            held = plan.split("CTE held")[1].split("CTE taken")[0]
            assert "pk_jobs" in held and "uq_jobs_live_task" not in held, plan


@contextmanager
def listening(url: str) -> Iterator[psycopg.Connection]:
    """A connection that LISTENs on the workers' channel, as a worker's does."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"LISTEN {JOBS_CHANNEL}")
        yield conn


def heard(conn: psycopg.Connection) -> int:
    """How many notifications arrived (waiting a little for the first)."""
    return sum(1 for _ in conn.notifies(timeout=0.3, stop_after=1))


def test_a_job_the_verdict_claims_itself_wakes_nobody(pg_store: Store, pg_url: str) -> None:
    add_tasks(pg_store, "aaaa", 2)
    older, younger = pg_store.claim_jobs("w-1", "here", 2, 30)
    with listening(pg_url) as conn:
        assert pg_store.finish_job(analysed(older), ME) is not None
        assert heard(conn) == 0  # its own next job: nobody else need look

        # Without a claim, the job it queues is announced.
        pg_store.finish_job(analysed(younger))
        assert heard(conn) == 1


def test_a_job_the_verdict_queues_but_leaves_is_announced(pg_store: Store, pg_url: str) -> None:
    add_tasks(pg_store, "aaaa", 2)
    older, younger = pg_store.claim_jobs("w-1", "here", 2, 30)
    pg_store.finish_job(analysed(older))  # the older task's design job waits
    with listening(pg_url) as conn:
        following = pg_store.finish_job(analysed(younger), ME)
        assert following is not None and following.task_id == older.task_id
        assert heard(conn) == 1  # the younger task's design job is left for any worker


def test_an_older_task_leaving_testing_wakes_the_workers_though_its_verdict_claimed(
    pg_store: Store, pg_url: str
) -> None:
    # The younger task waits for the serial gate while the older one tests ahead of it; the
    # older one's failing test sends it back to development, whose job its verdict claims:
    # the younger task's deploy job is claimable now, and the workers must hear of it.
    older, younger = add_task(pg_store, "aaaa2222"), add_task(pg_store, "bbbb3333")
    move_to(pg_store, older, Stage.TESTING)
    move_to(pg_store, younger, Stage.DEPLOY_STAGING)
    [testing] = pg_store.claim_jobs("w-1", "here", 5, 30)
    assert testing.task_id == older  # the younger task's job waits behind it
    back = Transition(Stage.DEVELOPMENT, TaskState.ACTIVE, 2, "development", rollback=True)
    with listening(pg_url) as conn:
        following = pg_store.finish_job(replace(analysed(testing), transition=back), ME)
        assert following is not None and following.task_id == older
        assert heard(conn) == 1
    [staging] = pg_store.claim_jobs("w-2", "here", 5, 30)
    assert (staging.task_id, staging.stage) == (younger, Stage.DEPLOY_STAGING)
