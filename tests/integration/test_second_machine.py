"""A worker on a second machine, simulated in this process: its recorded host differs, so a
take-over can rely only on its lease (no dead-process shortcut, no kill), and a stale attempt
gets as far as trying to commit, and to push."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orchestrator.errors import StaleState
from orchestrator.intake import submit_task
from orchestrator.jobs.context import JobContext, JobEnd
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.scheduler import worker as worker_module
from orchestrator.scheduler.recovery import Identity
from orchestrator.settings import Settings
from orchestrator.store import Claimant, Job, JobStatus, RepoSpec, Store, Verdict, open_store
from orchestrator.store.schema import artifacts
from orchestrator.workspace import checkout
from tests.helpers import fake_agent_settings, git, running_job

SKIPPED = frozenset({Stage.DESIGN, Stage.REVIEW, Stage.DEPLOY_STAGING, Stage.DEPLOY})


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "test_runner_enabled": False,
        "defer_backoff_s": 0.05,
        "kill_grace_s": 0.5,
        "lease_s": 1.0,
        **overrides,
    }
    return fake_agent_settings(db_url, home, **values)


def on_another_machine(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record the worker's jobs under another host name, and freeze its heartbeat, lease
    renewals and lease watch, as SIGSTOP would: only its job thread, waiting on the agent,
    goes on."""
    worker.identity = Identity(f"machine-b-{id(worker)}", "machine-b")
    monkeypatch.setattr(worker, "_heartbeat", lambda: None)
    monkeypatch.setattr(worker, "_renewals", lambda: None)
    monkeypatch.setattr(worker, "_watch_leases", lambda: None)


def test_a_paused_worker_on_another_machine_is_refused_its_stale_commit(
    fake_bin: Path,
    make_repo: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A remote: each machine works in a clone and a worktree of its own.
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--bare", "--quiet", str(make_repo("app")), str(origin))
    spec = RepoSpec(path=str(origin), default_branch="main", skip_stages=SKIPPED, is_remote=True)
    store.add_repo("app", spec)
    task = submit_task(store, orch_home, "app", "Work", "")
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "2.5")  # outlives the 1 s lease
    elsewhere = tmp_path / "machine-b"  # its own home: artifacts and logs of its own
    paused_store = open_store(settings_for(db_url, elsewhere))
    paused = Worker(paused_store, settings_for(db_url, elsewhere, max_parallel_jobs=1))
    on_another_machine(paused, monkeypatch)
    refused: list[tuple[int, int]] = []
    finish = paused_store.finish_job

    def finish_or_stop(verdict: Verdict, hand_off: Claimant | None = None) -> object:
        try:
            return finish(verdict, hand_off)
        except StaleState:
            refused.append((verdict.job.id, verdict.job.attempt))
            paused.stop()  # it has shown what it would do; let it take nothing more
            raise

    monkeypatch.setattr(paused_store, "finish_job", finish_or_stop)
    paused_thread = threading.Thread(target=paused.run)
    paused_thread.start()
    try:
        stale = running_job(store)
        monkeypatch.setenv("FAKE_AGENT_SLEEP", "0")  # read by every agent started from now
        taker = Worker(store, settings_for(db_url, orch_home), drain=True)
        taker_thread = threading.Thread(target=taker.run)
        taker_thread.start()
        taker_thread.join(90)
        assert not taker_thread.is_alive(), "the taker never drained"
        paused_thread.join(30)
    finally:
        paused.stop()
        paused_thread.join(30)
        paused_store.close()
    assert refused == [(stale.id, stale.attempt)]  # it tried to commit, and was refused
    reclaimed = store.get_job(stale.id)
    assert (reclaimed.status, reclaimed.outcome) == (JobStatus.ABANDONED, "abandoned")
    assert store.get_task(task.id).state is TaskState.DONE
    moves = [(e.from_stage, e.round) for e in store.events(task.id)]
    assert len(moves) == len(set(moves))  # every move once
    with store.engine.connect() as conn:
        count = select(func.count()).select_from(artifacts)
        assert conn.execute(count.where(artifacts.c.job_id == stale.id)).scalar() == 0


def test_every_push_of_a_job_is_fenced_by_its_attempt(
    make_repo: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    origin = tmp_path / "origin.git"
    work = make_repo("app")
    git(tmp_path, "clone", "--bare", "--quiet", str(work), str(origin))
    git(work, "remote", "add", "origin", str(origin))
    store.add_repo("app", RepoSpec(path=str(work), default_branch="main"))
    submit_task(store, orch_home, "app", "Work", "")
    pushed: list[str] = []

    def taken_over_then_push(context: JobContext, job: Job) -> JobEnd:
        store.abandon_job(job, "taken over while it ran")
        checkout.push(work, "HEAD:refs/heads/stale")
        pushed.append("stale")
        return JobEnd.VERDICT

    monkeypatch.setattr(worker_module, "launch_job", taken_over_then_push)
    worker = Worker(store, settings_for(db_url, orch_home))
    [job] = store.claim_jobs(worker.identity.worker_id, worker.identity.host, 1, 30)
    assert worker._run_job(job, worker_module.CancelToken()) is None  # StaleState: logged
    assert pushed == []
    assert git(origin, "branch", "--list", "stale").strip() == ""
