"""Leases, fencing and liveness at the store level, on both backends: what a worker that lost
its job can no longer do, what a dead worker leaves behind, and how the others find out."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import func, select, update

from orchestrator.errors import StaleState
from orchestrator.overview import status_report
from orchestrator.pipeline.stages import Producer, Stage, TaskState
from orchestrator.pipeline.transitions import Transition
from orchestrator.proc import host_identity
from orchestrator.scheduler.recovery import Identity, take_over
from orchestrator.settings import load_settings
from orchestrator.store import Job, JobMetrics, JobStatus, NewTask, RepoSpec, Store, Verdict
from orchestrator.store import open_store as open_store_
from orchestrator.store.records import WorkerState
from orchestrator.store.schema import artifacts, events, jobs, tasks, workers
from tests.conftest import Run

HERE = host_identity()
ELSEWHERE = Identity("other-machine-1", "other-machine")  # a worker on a second machine
LEASE_S = 0.3


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store whose workers count as lost after a short lease."""
    opened = open_store_(load_settings(db_url=db_url, lease_s=LEASE_S))
    yield opened
    opened.close()


def add_task(store: Store, task_id: str, repo: str = "app", is_self: bool = False) -> str:
    if repo not in {r.name for r in store.list_repos()}:
        store.add_repo(repo, RepoSpec(path=f"/srv/{repo}", default_branch="main", is_self=is_self))
    repo_id = store.get_repo(repo).id
    store.create_task(NewTask(task_id, repo_id, "t", "", f"orch/{task_id}", f"/wt/{task_id}"), "x")
    return task_id


def move_to(store: Store, task_id: str, stage: Stage) -> None:
    """Put a task (and its queued job) in `stage`, as earlier verdicts would have."""
    with store.engine.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(stage=stage))
        conn.execute(update(jobs).where(jobs.c.task_id == task_id).values(stage=stage))


def claim(store: Store, worker: str, host: str = HERE, lease_s: float = LEASE_S) -> Job:
    [job] = store.claim_jobs(worker, host, 1, lease_s)
    return job


def verdict(job: Job, move: Transition) -> Verdict:
    text = "analysis_status: READY\n"
    return Verdict(
        job,
        Producer.ANALYST,
        "02-analysis.md",
        text,
        "READY",
        move,
        JobMetrics(producer="analyst", outcome="verdict"),
    )


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_reclaimed_attempt_cannot_commit_and_leaves_no_trace(store: Store) -> None:
    task_id = add_task(store, "aaaa2222")
    stale = claim(store, "w-here")
    assert take_over(store, ELSEWHERE, 0.1) == []  # the lease is still good: nothing to take
    time.sleep(LEASE_S + 0.1)
    [fresh] = take_over(store, ELSEWHERE, 0.1)  # another machine: only the lease counts
    assert store.get_job(stale.id).status is JobStatus.ABANDONED
    with pytest.raises(StaleState):
        store.finish_job(verdict(stale, Transition(Stage.DESIGN, TaskState.ACTIVE, 1, "design")))
    with pytest.raises(StaleState):
        store.hold(stale, LEASE_S)  # the fence every push checks
    with store.engine.connect() as conn:
        written = conn.execute(
            select(func.count()).select_from(artifacts).where(artifacts.c.job_id == stale.id)
        ).scalar()
        moves = conn.execute(select(events.c.to_stage).where(events.c.task_id == task_id)).all()
    assert written == 0 and [m.to_stage for m in moves] == ["analysis"]
    assert store.get_task(task_id).stage is Stage.ANALYSIS
    retaken = claim(store, ELSEWHERE.worker_id, ELSEWHERE.host)
    assert (retaken.id, retaken.attempt) == (fresh.id, 1)
    store.hold(retaken, LEASE_S)  # the current attempt may push


def test_a_verdict_on_a_task_that_left_its_stage_writes_nothing(store: Store) -> None:
    # The job still holds its lease, but its task moved on under it (a person's move): the
    # verdict is refused whole, on PostgreSQL in one statement (store/verdicts.py) as on
    # SQLite one write at a time.
    task_id = add_task(store, "cccc4444")
    held = claim(store, "w-here", lease_s=30)
    with store.engine.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == task_id).values(stage=Stage.REVIEW))
    with pytest.raises(StaleState, match="left analysis before the job ended"):
        store.finish_job(verdict(held, Transition(Stage.DESIGN, TaskState.ACTIVE, 1, "design")))
    with store.engine.connect() as conn:
        written = conn.execute(
            select(func.count()).select_from(artifacts).where(artifacts.c.task_id == task_id)
        ).scalar()
        moves = conn.execute(select(events.c.to_stage).where(events.c.task_id == task_id)).all()
        task_jobs = conn.execute(select(jobs.c.status).where(jobs.c.task_id == task_id)).all()
    assert written == 1  # 01-task.md alone
    assert [m.to_stage for m in moves] == ["analysis"]
    assert [j.status for j in task_jobs] == [JobStatus.RUNNING]
    assert store.get_task(task_id).stage is Stage.REVIEW
    store.hold(held, LEASE_S)  # the attempt itself is still current


def test_a_final_verdict_that_frees_the_serial_gate_wakes_the_workers(pg_store: Store) -> None:
    store = pg_store
    for task_id in ("aaaa2222", "bbbb3333"):
        move_to(store, add_task(store, task_id), Stage.DEPLOY_STAGING)
    holder = claim(store, "w-here")
    assert store.claim_jobs("w-here", HERE, 5, 30) == []  # the other task waits for the gate
    heard = threading.Event()
    listening = threading.Event()
    stop = threading.Event()
    listener = threading.Thread(
        target=store.listen_for_jobs, args=(heard.set, stop, listening.set), daemon=True
    )
    listener.start()
    try:
        assert listening.wait(10)
        until(heard.is_set)  # the catch-up call made on listening
        heard.clear()
        done = Transition(Stage.DEPLOY_STAGING, TaskState.DONE, 1, "done")
        store.finish_job(verdict(holder, done))  # a final verdict queues no next job
        assert heard.wait(3)  # not left to the workers' 5 s fallback poll
    finally:
        stop.set()
        listener.join(10)
    assert [j.task_id for j in store.claim_jobs("w-here", HERE, 5, 30)] == ["bbbb3333"]


def test_a_worker_without_a_heartbeat_for_a_lease_is_lost(
    db_url: str, orch: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    lease_s = 20.0  # the live worker must stay live however slow the machine
    monkeypatch.setenv("ORCH_LEASE_S", str(lease_s))
    store = open_store_(load_settings())
    store.register_worker("alive-1", HERE, 101, 1.0)
    store.register_worker("killed-1", HERE, 102, 1.0)
    store.register_worker("stopped-1", HERE, 103, 1.0)
    store.stop_worker("stopped-1")
    with store.engine.begin() as conn:  # killed: its heartbeat stopped two leases ago
        old = store.now() - timedelta(seconds=2 * lease_s)
        conn.execute(update(workers).where(workers.c.id == "killed-1").values(heartbeat_at=old))
    states = {w.id: w.state for w in store.list_workers()}
    assert states == {
        "alive-1": WorkerState.RUNNING,
        "killed-1": WorkerState.LOST,
        "stopped-1": WorkerState.STOPPED,
    }
    assert store.get_worker("killed-1").state is WorkerState.LOST  # type: ignore[union-attr]
    documents = {w["id"]: w["state"] for w in status_report(store)["workers"]}  # GET /status
    assert documents == {"alive-1": "running", "killed-1": "lost"}

    listed = orch("workers", "--json")
    assert listed.code == 0
    assert {w["id"]: w["state"] for w in json.loads(listed.out)} == documents
    table = orch("workers", "--all")
    rows = {line.split()[0]: line for line in table.out.splitlines() if "-1" in line}
    assert "lost" in rows["killed-1"] and "stopped" in rows["stopped-1"]
    assert "lost" not in rows["alive-1"] and "ago" in rows["alive-1"]
    store.close()


def test_a_plain_worker_never_claims_a_self_deploy(store: Store) -> None:
    move_to(store, add_task(store, "self2222", repo="me", is_self=True), Stage.DEPLOY)
    assert store.claim_jobs("plain-1", HERE, 5, 30) == []
    assert store.waiting_self_deploys() == ["self2222"]
    [job] = store.claim_jobs("serve-1", HERE, 5, 30, self_deploy=True)
    assert (job.task_id, job.stage, job.infra_failures) == ("self2222", Stage.DEPLOY, 0)
    assert store.waiting_self_deploys() == []


def test_the_connection_pool_grows_with_the_parallel_jobs(pg_url: str) -> None:
    opened = open_store_(load_settings(db_url=pg_url, max_parallel_jobs=12))
    try:
        pool = opened.engine.pool
        assert pool.size() == 12 + 4  # type: ignore[attr-defined]
    finally:
        opened.close()


@pytest.fixture
def agent_left_behind() -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own, like an agent whose worker was SIGKILLed."""
    process = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_dead_workers_agent_is_killed_on_its_host_after_another_machine_reclaimed_it(
    store: Store, agent_left_behind: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    add_task(store, "aaaa2222")
    job = claim(store, "dead-worker-1")
    started = psutil.Process(agent_left_behind.pid).create_time()
    assert store.record_process(job.id, job.attempt, agent_left_behind.pid, started, "m-1")
    time.sleep(LEASE_S + 0.1)
    take_over(store, ELSEWHERE, 0.1)  # reclaimed elsewhere: it cannot reach the process
    assert store.get_job(job.id).status is JobStatus.ABANDONED
    assert agent_left_behind.poll() is None
    [stray] = store.stray_processes(HERE)
    assert stray.id == job.id

    take_over(store, Identity("starting-1", HERE), 0.5)  # a worker starts on that host
    assert agent_left_behind.wait(timeout=10) is not None
    assert store.stray_processes(HERE) == []  # swept once, not at every heartbeat


def test_the_sweep_never_kills_a_process_that_reused_the_recorded_pid(
    store: Store, agent_left_behind: subprocess.Popen[bytes]
) -> None:
    add_task(store, "aaaa2222")
    job = claim(store, "dead-worker-1")
    other_start = psutil.Process(agent_left_behind.pid).create_time() - 100.0
    store.record_process(job.id, job.attempt, agent_left_behind.pid, other_start, "m-1")
    store.abandon_job(job, "reclaimed")
    take_over(store, Identity("starting-1", HERE), 0.2)
    assert agent_left_behind.poll() is None  # not the process that job started
    assert store.stray_processes(HERE) == []
