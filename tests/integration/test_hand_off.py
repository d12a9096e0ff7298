"""The hand-off: a job's own thread claims the next job the moment its verdict commits.

With real agent processes and a real database: the slots never hold more jobs than
ORCH_MAX_PARALLEL_JOBS, most next stages start in the slot that ran the stage before (not
after the loop comes round), and a worker that stops while a slot hands off gives the job
back at once, whether it claimed after its job ended or its job's verdict claimed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.intake import submit_task
from orchestrator.jobs.context import JobEnd
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.proc import CancelToken
from orchestrator.scheduler import Worker
from orchestrator.scheduler import slots as slots_module
from orchestrator.store import Claimant, Job, JobStatus, Store, Verdict
from orchestrator.store.schema import jobs, task_tallies, usage_tallies, verdict_tallies
from orchestrator.store.tallies import summed
from tests.helpers import fake_agent_settings


def test_slots_hand_off_and_never_hold_more_jobs_than_allowed(
    fake_bin: Path, agent_repo: Path, store: Store, db_url: str, orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    handed: list[int] = []
    real = slots_module.run_in_slot

    def counting(first, run, hand_off, ended):  # type: ignore[no-untyped-def]
        def counted(end: JobEnd | None):  # type: ignore[no-untyped-def]
            following = hand_off(end)
            if following is not None:
                handed.append(following.job.id)
            return following

        return real(first, run, counted, ended)

    monkeypatch.setattr("orchestrator.scheduler.worker.run_in_slot", counting)
    settings = fake_agent_settings(
        db_url, orch_home, max_parallel_jobs=2, test_runner_enabled=False
    )
    tasks = [submit_task(store, orch_home, "app", f"Task {n}", "") for n in range(6)]
    worker = Worker(store, settings, drain=True)
    most = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal most
        running = select(func.count()).where(jobs.c.status == JobStatus.RUNNING)
        while not stop.is_set():
            with store.engine.connect() as conn:
                most = max(most, conn.execute(running).scalar_one())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert worker.run() == 0
    finally:
        stop.set()
        watcher.join()
    assert [store.get_task(t.id).state for t in tasks] == [TaskState.DONE] * 6
    assert most <= 2
    stages = 6 * 5  # analysis, design, development, review, testing
    # The loop claims the first two; after that nearly every stage starts by a hand-off.
    assert len(handed) >= stages // 2, len(handed)
    assert len(set(handed)) == len(handed)
    # The worker folded the running totals' additions as it stopped: a row per total.
    with store.engine.connect() as conn:
        for table in (task_tallies, verdict_tallies, usage_tallies):
            rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
            totals = conn.execute(select(func.count()).select_from(summed(table))).scalar_one()
            assert (table.name, rows) == (table.name, totals)


def test_a_worker_stopping_during_a_hand_off_gives_the_job_back(
    agent_repo: Path, store: Store, db_url: str, orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = fake_agent_settings(db_url, orch_home, max_parallel_jobs=1)
    task = submit_task(store, orch_home, "app", "Task", "")
    worker = Worker(store, settings)
    real_claim = worker._claim_jobs

    def claim_then_stop(limit: int):  # type: ignore[no-untyped-def]
        claimed = real_claim(limit)
        worker.stop()  # asked to stop while the slot claimed: after its check, before its run
        return claimed

    monkeypatch.setattr(worker, "_claim_jobs", claim_then_stop)
    assert worker._hand_off(JobEnd.VERDICT) is None  # nothing to run in the slot
    [given_back] = worker._slots.reap()
    assert given_back.future.result() is JobEnd.CANCELLED
    # The job it claimed was given back at once, as a fresh job for the next worker.
    states = [(j.stage, j.status) for j in store.task_jobs(task.id)]
    assert states == [(Stage.ANALYSIS, JobStatus.ABANDONED), (Stage.ANALYSIS, JobStatus.QUEUED)]


def test_a_worker_stopping_as_a_verdict_claims_gives_the_claimed_job_back(
    fake_bin: Path, agent_repo: Path, store: Store, db_url: str, orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    settings = fake_agent_settings(db_url, orch_home, max_parallel_jobs=1)
    task = submit_task(store, orch_home, "app", "Task", "")
    worker = Worker(store, settings)
    real_finish = store.finish_job

    def finish_then_stop(verdict: Verdict, hand_off: Claimant | None = None) -> Job | None:
        claimed = real_finish(verdict, hand_off)
        worker.stop()  # asked to stop as the verdict claimed the next job in its transaction
        return claimed

    monkeypatch.setattr(store, "finish_job", finish_then_stop)
    [job] = worker._claim_jobs(1)
    # The real agent ran and its verdict claimed the design job, in the job's own thread.
    assert worker._run_job(job, CancelToken()) is JobEnd.VERDICT
    assert worker._hand_off(JobEnd.VERDICT) is None  # nothing to run in the slot
    [given_back] = worker._slots.reap()
    assert given_back.future.result() is JobEnd.CANCELLED
    states = [(j.stage, j.status) for j in store.task_jobs(task.id)]
    assert states == [
        (Stage.ANALYSIS, JobStatus.DONE),
        (Stage.DESIGN, JobStatus.ABANDONED),
        (Stage.DESIGN, JobStatus.QUEUED),
    ]
