"""The running totals of the history (store/tallies.py), on both backends: they agree with a
count of the rows at every point, a rolled-back transaction adds nothing, concurrent verdicts
on one stage all count without a deadlock and without waiting for one another, folds keep
them whole, and an upgrade counts the history already stored."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from orchestrator.errors import Conflict, StaleState, StoreError
from orchestrator.pipeline.stages import Producer, Stage, TaskState
from orchestrator.pipeline.transitions import Transition
from orchestrator.settings import load_settings
from orchestrator.store import (
    AgentCall,
    Job,
    JobMetrics,
    JobStatus,
    NewTask,
    RepoSpec,
    Store,
    Verdict,
    average_tokens,
    tallies,
    usage_by_stage,
)
from orchestrator.store import open_store as open_store_
from orchestrator.store.tasks import MoveRows, write_move
from tests.helpers import stored_totals, tallies_agree
from tests.integration.test_store import at_revision, old_task

TO_DESIGN = Transition(Stage.DESIGN, TaskState.ACTIVE, 1, "design")


def add_tasks(store: Store, prefix: str, count: int) -> None:
    if "app" not in {repo.name for repo in store.list_repos()}:
        store.add_repo("app", RepoSpec(path="/srv/app", default_branch="main"))
    repo_id = store.get_repo("app").id
    for n in range(count):
        task_id = f"{prefix}{n:04d}"
        store.create_task(NewTask(task_id, repo_id, "t", "", f"orch/{task_id}", "/wt"), "x")


def analysed(job: Job) -> Verdict:
    return Verdict(
        job,
        Producer.ANALYST,
        "02-analysis.md",
        "analysis_status: READY\n",
        "READY",
        TO_DESIGN,
        JobMetrics(producer="analyst", outcome="verdict"),
    )


def call(stage: str, role: str, kind: str = "ok", **figures: Any) -> AgentCall:
    """An agent call of the task every test adds first."""
    return AgentCall("aaaa0000", None, "A1", stage, role, 1, "scripted", kind, **figures)


def test_the_totals_follow_every_committed_verdict_and_call(store: Store) -> None:
    add_tasks(store, "aaaa", 3)
    jobs = store.claim_jobs("w-1", "here", 3, 30)
    for job in jobs[:2]:
        store.finish_job(analysed(job))
    with pytest.raises(StaleState):
        store.finish_job(analysed(jobs[0]))  # recorded once: the second is refused whole
    store.record_agent_call(call("testing", "tester", tokens_in=100, tokens_out=20, cost_usd=0.5))
    store.record_agent_call(call("testing", "tester", tokens_in=300, tokens_out=None))
    store.record_agent_call(call("testing", "tester", tokens_out=7))  # no tokens in: unmeasured
    store.record_agent_call(call("testing", "tester", "timeout", tokens_in=900, tokens_out=9))
    store.record_agent_call(call("analysis", "analyst", tokens_in=10, tokens_out=5))

    assert store.counts().by_state == {"active": 3}
    figures = store.determinization()
    assert figures.verdicts_by_producer == {"analyst": 2}
    assert figures.verdicts_by_stage == {"analysis": {"code": 0, "llm": 2}}
    assert (figures.agent_calls, figures.tokens_in, figures.tokens_out) == (5, 1310, 41)
    assert figures.cost_usd == pytest.approx(0.5)
    by_stage = usage_by_stage(store.usage())
    assert (by_stage["testing"].calls, by_stage["testing"].tokens_in) == (4, 1300)
    assert average_tokens(store.usage(), ("tester",)) == pytest.approx((120 + 300) / 2)
    assert average_tokens(store.usage(), ("deployer",)) is None
    assert tallies_agree(store)


def test_tasks_by_state_follow_every_move_people_and_verdicts_make(store: Store) -> None:
    add_tasks(store, "aaaa", 4)
    done, blocked, cancelled, failed = store.claim_jobs("w-1", "here", 4, 30)
    finished = Transition(Stage.ANALYSIS, TaskState.DONE, 1, "done")
    store.finish_job(replace(analysed(done), transition=finished))
    store.block_task(blocked, "needs a person", JobMetrics("analyst", "blocked"), "blocked")
    store.cancel_task(cancelled.task_id)
    lost = Transition(Stage.ANALYSIS, TaskState.FAILED, 1, "failed", alert="failed")
    store.finish_job(replace(analysed(failed), transition=lost))
    assert store.counts().by_state == {"done": 1, "blocked": 1, "cancelled": 1, "failed": 1}
    store.resume_task(blocked.task_id)
    store.retry_task(failed.task_id)
    with pytest.raises(Conflict):
        store.cancel_task(cancelled.task_id)  # refused whole: nothing counted
    assert store.counts().by_state == {"done": 1, "active": 2, "cancelled": 1}
    assert tallies_agree(store)


def test_a_rolled_back_transaction_adds_nothing_to_the_totals(store: Store) -> None:
    add_tasks(store, "aaaa", 1)
    rows = MoveRows("aaaa0000", None, 1, Producer.PERSON, "analysis", "design", "READY")
    with pytest.raises(RuntimeError), store._write() as conn:
        write_move(conn, rows)
        tallies.count_call(
            conn, stage="analysis", role="analyst", ok=True, tokens_in=1, tokens_out=1, cost_usd=1
        )
        raise RuntimeError("the transaction fails after its rows were written")
    # The next transactions, on the same pooled connections, carry nothing of it.
    for _ in range(3):
        store.record_agent_call(call("review", "reviewer", tokens_in=1, tokens_out=1))
    assert store.determinization().verdicts_by_producer == {}
    assert set(usage_by_stage(store.usage())) == {"review"}
    assert tallies_agree(store)


@pytest.mark.pg
def test_concurrent_verdicts_and_calls_on_one_stage_all_count_while_folds_run(
    pg_store: Store,
) -> None:
    # Eight workers finish analysis verdicts and record analyst calls at once, adding to the
    # same two totals, while two workers fold the totals' rows again and again.
    store, workers, each = pg_store, 8, 12
    add_tasks(store, "aaaa", workers * each)
    faults: list[BaseException] = []
    working = threading.Event()
    working.set()

    def work(n: int) -> None:
        try:
            for _ in range(each):
                [job] = store.claim_jobs(f"w-{n}", "here", 1, 30)
                store.record_agent_call(call("analysis", "analyst", tokens_in=2, tokens_out=1))
                store.finish_job(analysed(job))
        except BaseException as exc:  # a deadlock would surface here as a StoreError
            faults.append(exc)

    def fold() -> None:
        try:
            while working.is_set():
                store.fold_totals()
        except BaseException as exc:
            faults.append(exc)

    folders = [threading.Thread(target=fold) for _ in range(2)]
    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in (*folders, *threads):
        thread.start()
    for thread in threads:
        thread.join(120)
    working.clear()
    for thread in folders:
        thread.join(120)
    assert faults == []
    figures = store.determinization()
    assert figures.verdicts_by_producer == {"analyst": workers * each}
    assert (figures.agent_calls, figures.tokens_in) == (workers * each, 2 * workers * each)
    assert store.counts().by_state == {"active": workers * each}
    assert tallies_agree(store)


@pytest.mark.pg
def test_a_verdict_does_not_wait_for_the_totals_of_an_uncommitted_one(pg_store: Store) -> None:
    # Another transaction added to the analysis verdicts and has not committed: a total updated
    # in place would stay locked until then, and this verdict on the same stage would wait.
    store = pg_store
    add_tasks(store, "aaaa", 1)
    [job] = store.claim_jobs("w-1", "here", 1, 30)
    finished = threading.Event()
    faults: list[BaseException] = []

    def finish() -> None:
        try:
            store.finish_job(analysed(job))
            finished.set()
        except BaseException as exc:
            faults.append(exc)

    with store.engine.connect() as other:
        other.begin()
        tallies.count_verdict(other, str(Producer.ANALYST), str(Stage.ANALYSIS))
        tallies.flush(other)
        thread = threading.Thread(target=finish, daemon=True)
        thread.start()
        ended_meanwhile = finished.wait(20)  # a bound for a stuck wait, not a timing
        other.rollback()
    thread.join(60)
    assert faults == []
    assert ended_meanwhile, "the verdict waited for another transaction's totals"
    assert store.determinization().verdicts_by_producer == {"analyst": 1}


def table_rows(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_fold_leaves_one_row_per_total_and_every_total_as_it_was(store: Store) -> None:
    add_tasks(store, "aaaa", 4)
    for job in store.claim_jobs("w-1", "here", 4, 30):
        store.record_agent_call(call("analysis", "analyst", tokens_in=3, tokens_out=1))
        store.finish_job(analysed(job))
    store.cancel_task("aaaa0003")
    before = stored_totals(store.engine)
    tables = ("task_tallies", "verdict_tallies", "usage_tallies")
    # An addition a row: four new tasks, one moved out again; four verdicts; four calls.
    assert [table_rows(store, t) for t in tables] == [6, 4, 4]
    assert store.fold_totals() == 4 + 3 + 3
    assert stored_totals(store.engine) == before
    assert [table_rows(store, t) for t in tables] == [2, 1, 1]
    assert store.fold_totals() == 0  # nothing left to fold
    assert store.counts().by_state == {"active": 3, "cancelled": 1}


def test_the_totals_survive_the_upgrade_to_additions_and_the_way_back(db_url: str) -> None:
    with at_revision(db_url, "0016") as conn:
        old_task(conn, "dddd0000", "active", 1)
        conn.execute(text("INSERT INTO task_tallies (state, tasks) VALUES ('active', 1)"))
        conn.execute(
            text(
                "INSERT INTO verdict_tallies (producer, stage, verdicts) "
                "VALUES ('analyst', 'analysis', 5), ('tester', 'testing', 2)"
            )
        )
    upgraded = open_store_(load_settings(db_url=db_url))
    try:
        assert upgraded.determinization().verdicts_by_producer == {"analyst": 5, "tester": 2}
        assert upgraded.counts().by_state == {"active": 1}
        with upgraded.engine.begin() as conn:  # two more additions to one total
            tallies.count_verdict(conn, "analyst", "analysis")
            tallies.flush(conn)
            tallies.count_verdict(conn, "analyst", "analysis")
            tallies.flush(conn)
        assert table_rows(upgraded, "verdict_tallies") == 4
    finally:
        upgraded.close()
    with at_revision(db_url, "0016", down=True) as conn:
        rows = conn.execute(text("SELECT producer, stage, verdicts FROM verdict_tallies"))
        assert sorted(tuple(row) for row in rows) == [
            ("analyst", "analysis", 7),
            ("tester", "testing", 2),
        ]


def test_the_upgrade_counts_the_history_already_stored(db_url: str) -> None:
    with at_revision(db_url, "0014") as conn:
        old_task(conn, "dddd0000", "active", 1)
        for source, target, producer in [
            (None, "analysis", "intake"),  # intake gives no verdict
            ("analysis", "design", "analyst"),
            ("design", "development", "architect"),
            ("development", "review", "developer"),
            ("review", "development", "reviewer"),
            ("development", "review", "developer"),
        ]:
            conn.execute(
                text(
                    "INSERT INTO events (task_id, from_stage, to_stage, producer, round, at) "
                    "VALUES ('dddd0000', :source, :target, :producer, 1, CURRENT_TIMESTAMP)"
                ),
                {"source": source, "target": target, "producer": producer},
            )
        for kind, tokens_in, cost in [("ok", 40, 0.25), ("ok", None, None), ("timeout", 5, 1.0)]:
            conn.execute(
                text(
                    "INSERT INTO agent_calls (task_id, call_site, stage, role, round, backend, "
                    "error_kind, tokens_in, tokens_out, cost_usd, at) VALUES ('dddd0000', "
                    "'A1', 'development', 'developer', 1, 'claude', :kind, :tokens_in, 2, "
                    ":cost, CURRENT_TIMESTAMP)"
                ),
                {"kind": kind, "tokens_in": tokens_in, "cost": cost},
            )
    upgraded = open_store_(load_settings(db_url=db_url))
    try:
        figures = upgraded.determinization()
        assert figures.verdicts_by_producer == {
            "analyst": 1,
            "architect": 1,
            "developer": 2,
            "reviewer": 1,
        }
        assert (figures.agent_calls, figures.tokens_in, figures.tokens_out) == (3, 45, 6)
        assert figures.cost_usd == pytest.approx(1.25)
        assert average_tokens(upgraded.usage(), ("developer",)) == pytest.approx(42)
        assert upgraded.counts().by_state == {"active": 1}
        assert tallies_agree(upgraded)
    finally:
        upgraded.close()


CALLS = st.lists(
    st.builds(
        call,
        st.sampled_from(["analysis", "testing"]),
        st.sampled_from(["analyst", "tester"]),
        st.sampled_from(["ok", "timeout", "rate_limit"]),
        tokens_in=st.none() | st.integers(0, 10**6),
        tokens_out=st.none() | st.integers(0, 10**6),
        cost_usd=st.none() | st.floats(0, 5, allow_nan=False),
    ),
    max_size=8,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=CALLS)
def test_any_run_of_calls_keeps_the_totals_equal_to_a_recount(store: Store, batch: Any) -> None:
    if not store.list_repos():  # the first example
        add_tasks(store, "aaaa", 1)
    for agent_call in batch:
        store.record_agent_call(agent_call)
    assert tallies_agree(store)


def test_a_total_that_fails_at_the_end_rolls_the_verdict_back(pg_store: Store) -> None:
    # A transaction's totals are its last statements (store/tallies.py): one that fails
    # there fails the whole transaction, and leaves the pooled connection usable.
    store = pg_store
    add_tasks(store, "aaaa", 2)
    first, second = store.claim_jobs("w-1", "here", 2, 30)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE verdict_tallies RENAME TO verdict_tallies_gone"))
    try:
        with pytest.raises(StoreError):
            store.finish_job(analysed(first))
    finally:
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE verdict_tallies_gone RENAME TO verdict_tallies"))
    assert store.get_job(first.id).status is JobStatus.RUNNING
    assert [e.to_stage for e in store.events(first.task_id)] == ["analysis"]
    for job in (first, second):  # the same pooled connections, fine again
        store.finish_job(analysed(job))
    assert store.determinization().verdicts_by_producer == {"analyst": 2}
    assert tallies_agree(store)
