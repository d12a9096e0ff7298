"""The scheduler with real agent processes (the contract-following fake agent)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import update

from orchestrator.errors import StoreError
from orchestrator.intake import submit_task
from orchestrator.jobs.context import JobContext, JobEnd
from orchestrator.jobs.launcher import launch_job
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.scheduler import worker as worker_module
from orchestrator.settings import Settings
from orchestrator.store import Job, RepoSpec, Store, Task
from orchestrator.store.records import JobStatus
from orchestrator.store.schema import jobs
from tests.conftest import Run
from tests.helpers import fake_agent_settings, git, running_job

LLM_ONLY = frozenset({Stage.DEPLOY, Stage.POST_DEPLOY})  # no runners yet: skip what needs one


@pytest.fixture
def repo_path(make_repo: Callable[..., Path], store: Store) -> Path:
    path = make_repo("app")
    store.add_repo("app", RepoSpec(path=str(path), default_branch="main", skip_stages=LLM_ONLY))
    return path


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "agent_command": "fake-agent {role} {stage} {task_id} {round}",
        "defer_backoff_s": 0.05,
        "defer_backoff_max_s": 0.2,
        "kill_grace_s": 0.5,
        "test_runner_enabled": False,  # these tests are about the LLM path and the scheduler
        **overrides,
    }
    return fake_agent_settings(db_url, home, **values)


def drain(store: Store, settings: Settings) -> None:
    assert Worker(store, settings, drain=True).run() == 0


def submit(store: Store, home: Path, count: int) -> list[Task]:
    return [submit_task(store, home, "app", f"Task {n}", f"do thing {n}") for n in range(count)]


def test_tasks_go_through_every_llm_stage_to_done(
    fake_bin: Path, repo_path: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    tasks = submit(store, orch_home, 3)
    # Both runners off: testing and staging go to the LLM tester and deployer.
    drain(store, settings_for(db_url, orch_home, staging_runner_enabled=False))
    for task in tasks:
        done = store.get_task(task.id)
        assert (done.state, done.round) == (TaskState.DONE, 1)
        moves = [(e.from_stage, e.to_stage) for e in store.events(task.id)]
        assert moves == [
            (None, "analysis"),
            ("analysis", "design"),
            ("design", "development"),
            ("development", "review"),
            ("review", "testing"),
            ("testing", "deploy-staging"),
            ("deploy-staging", "done"),
        ]
        assert [e.producer for e in store.events(task.id)][-2:] == ["tester", "deployer"]
        log = git(repo_path, "log", "--format=%s", task.branch)
        assert "developer: Task" in log  # the developer's work was committed on its branch
        assert not Path(done.worktree).exists()  # a done task's worktree is removed


def test_changes_requested_sends_the_task_back_with_the_review_in_the_prompt(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    [task] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home))
    done = store.get_task(task.id)
    assert (done.state, done.round) == (TaskState.DONE, 2)
    moves = [(e.from_stage, e.to_stage, e.verdict, e.round) for e in store.events(task.id)]
    assert ("review", "development", "CHANGES_REQUESTED", 1) in moves
    assert moves.count(("development", "review", "DONE", 2)) == 1
    prompt = (orch_home / "tasks" / task.id / "prompt-developer-r2.txt").read_text()
    assert "FAKE-REVIEW-NOTE" in prompt and "Feedback: why round 2 exists" in prompt
    first = (orch_home / "tasks" / task.id / "prompt-developer-r1.txt").read_text()
    assert "Feedback" not in first
    assert "CHANGES_REQUESTED" in store.get_artifact(task.id, "11-code-review.md", round=1).text
    assert "APPROVED" in store.get_artifact(task.id, "11-code-review.md").text
    reviewer_r2 = (orch_home / "tasks" / task.id / "prompt-reviewer-r2.txt").read_text()
    assert "round 2" in reviewer_r2  # every role of round 2 sees round 2


def test_retry_limit_fails_the_task_with_an_alert(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "99")
    [task] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home, max_dev_retries=1))
    failed = store.get_task(task.id)
    assert (failed.state, failed.stage, failed.round) == (TaskState.FAILED, Stage.REVIEW, 2)
    assert store.events(task.id)[-1].to_stage == "failed"
    [alert] = store.list_alerts(task_id=task.id)
    assert alert.kind == "retry_limit" and "ORCH_MAX_DEV_RETRIES" in alert.message
    assert Path(failed.worktree).exists()  # failed tasks keep theirs for inspection


def test_agent_without_artifact_is_retried_then_blocked_with_an_alert(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    [task] = submit(store, orch_home, 1)
    settings = settings_for(db_url, orch_home, agent_command="true", agent_retries=2)
    with caplog.at_level("WARNING", logger="orchestrator.scheduler.worker"):
        drain(store, settings)
    assert f"task {task.id} blocked in analysis: the analyst agent failed" in caplog.text
    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, Stage.ANALYSIS)
    assert "no_artifact" in (blocked.reason or "") and "3 attempts" in (blocked.reason or "")
    attempts = [j for j in store.task_jobs(task.id)]
    assert len(attempts) == 1 and attempts[0].agent_failures == 2
    [alert] = store.list_alerts(task_id=task.id)
    assert alert.kind == "agent_no_artifact"
    assert [e.to_stage for e in store.events(task.id)] == ["analysis"]  # retries are not events


def test_missing_cli_blocks_at_once(
    repo_path: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    [task] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home, agent_command="no-such-agent-cli {role}"))
    blocked = store.get_task(task.id)
    assert blocked.state is TaskState.BLOCKED and "cli_missing" in (blocked.reason or "")
    assert store.task_jobs(task.id)[0].agent_failures == 0  # not retried: it cannot help


def test_resume_sends_a_blocked_task_back_into_its_stage(
    fake_bin: Path, repo_path: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    [task] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home, agent_command="no-such-agent-cli"))
    assert store.get_task(task.id).state is TaskState.BLOCKED
    resumed = store.resume_task(task.id)
    assert (resumed.state, resumed.reason) == (TaskState.ACTIVE, None)
    drain(store, settings_for(db_url, orch_home))
    assert store.get_task(task.id).state is TaskState.DONE


def test_stages_without_runner_or_llm_fallback_block_for_a_person(
    fake_bin: Path, make_repo: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    store.add_repo("full", RepoSpec(path=str(make_repo("full")), default_branch="main"))
    task = submit_task(store, orch_home, "full", "Ship it", "")
    drain(store, settings_for(db_url, orch_home, deploy_finalizer_enabled=False))
    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, Stage.DEPLOY)
    assert "no LLM fallback" in (blocked.reason or "")
    assert store.list_alerts(task_id=task.id)[0].kind == "no_runner"


def test_parallel_jobs_are_bounded(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "0.15")
    tasks = submit(store, orch_home, 5)
    drain(store, settings_for(db_url, orch_home, max_parallel_jobs=2))
    spans = [
        (j.started_at, j.finished_at)
        for t in tasks
        for j in store.task_jobs(t.id)
        if j.started_at and j.finished_at
    ]
    for start, _ in spans:
        overlapping = [1 for s, f in spans if s <= start < f]
        assert len(overlapping) <= 2
    assert max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans) == 2


def test_serial_gate_lets_one_task_per_repo_into_staging_at_a_time(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "0.1")
    tasks = submit(store, orch_home, 3)
    drain(store, settings_for(db_url, orch_home))
    staging = sorted(
        (j.started_at, j.finished_at)
        for t in tasks
        for j in store.task_jobs(t.id)
        if j.stage is Stage.DEPLOY_STAGING and j.status is JobStatus.DONE
    )
    assert len(staging) == 3
    for (_, first_end), (second_start, _) in itertools.pairwise(staging):
        assert second_start >= first_end - timedelta(milliseconds=1)
    assert all(store.get_task(t.id).gate_acquired_at is None for t in tasks)


def test_watch_shows_the_stages_and_returns_once_the_task_is_finished(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    orch: Callable[..., Run],
) -> None:
    [task] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home))
    watched = orch("task", "watch", task.id)
    assert watched.code == 0
    for text in (task.id, "done", "analysis", "deploy-staging", "APPROVED", "reviewer"):
        assert text in watched.out


def test_gc_removes_worktrees_of_finished_tasks_only(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    orch: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "99")
    [failed] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home, max_dev_retries=0))
    [blocked] = submit(store, orch_home, 1)
    drain(store, settings_for(db_url, orch_home, agent_command="no-such-agent"))
    assert store.get_task(failed.id).state is TaskState.FAILED
    assert store.get_task(blocked.id).state is TaskState.BLOCKED
    kept = orch("gc", "--older-than", "1d", "--json")
    assert kept.code == 0 and kept.out.strip() == "[]"  # nothing is a day old yet
    cleaned = orch("gc", "--older-than", "0s", "--json")
    assert cleaned.code == 0 and failed.id in cleaned.out and blocked.id not in cleaned.out
    assert not Path(failed.worktree).exists() and Path(blocked.worktree).exists()
    assert git(repo_path, "branch", "--list", failed.branch).strip()  # the branch stays
    assert orch("gc", "--older-than", "soon").code == 2


def test_a_worker_cut_off_from_the_database_stops_its_agent_once_its_lease_is_over(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "60")
    submit(store, orch_home, 1)
    worker = Worker(store, settings_for(db_url, orch_home, lease_s=0.6))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        agent = psutil.Process(running_job(store).pid)

        def cut_off(*_args: object) -> set[int]:
            raise StoreError("database unavailable: the network is down")

        monkeypatch.setattr(store, "renew_leases", cut_off)
        cut_at = time.monotonic()
        agent.wait(timeout=10)  # another machine may have its job by now: it must stop
        assert time.monotonic() - cut_at < 5
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()


def test_a_slow_take_over_in_the_heartbeat_never_holds_up_the_lease_renewals(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Taking over a dead worker's jobs may wait out a kill grace; the renewals of this
    # worker's own jobs go on meanwhile, so its lease watch never stops a healthy agent.
    real_take_over = worker_module.take_over

    def slow_take_over(*args: object) -> bool:
        if len(args) == 4:  # the heartbeat's (the start-up one has no running jobs yet)
            time.sleep(2.0)
        return real_take_over(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_module, "take_over", slow_take_over)
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "2.5")
    [task] = submit(store, orch_home, 1)
    worker = Worker(store, settings_for(db_url, orch_home, lease_s=0.6))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while store.get_task(task.id).stage is Stage.ANALYSIS:
            assert time.monotonic() < deadline, "analysis never ended"
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(30)
    [analysis, *_] = store.task_jobs(task.id)
    assert analysis.status is JobStatus.DONE and analysis.attempt == 1


def test_a_job_whose_internal_error_could_not_be_recorded_is_reclaimed_and_drain_ends(
    fake_bin: Path,
    repo_path: Path,
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [task] = submit(store, orch_home, 1)
    launched: list[int] = []

    def bug_once(context: JobContext, job: Job) -> JobEnd:
        launched.append(job.id)
        if len(launched) == 1:
            raise RuntimeError("a bug inside orchestrator")
        return launch_job(context, job)

    def unrecorded(*_args: object, **_kwargs: object) -> Job:
        raise StoreError("database unavailable: a blip")

    monkeypatch.setattr(worker_module, "launch_job", bug_once)
    monkeypatch.setattr(store, "defer_job", unrecorded)  # the failure cannot be recorded
    worker = Worker(store, settings_for(db_url, orch_home, lease_s=0.6), drain=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        pytest.fail("--drain never ended: the job left under this worker was never reclaimed")
    assert store.get_task(task.id).state is TaskState.DONE
    assert store.get_job(launched[0]).status is JobStatus.ABANDONED


def test_an_internal_error_spends_its_own_budget_not_the_agents(
    fake_bin: Path, repo_path: Path, store: Store, db_url: str, orch_home: Path
) -> None:
    [task] = submit(store, orch_home, 1)
    [job] = store.task_jobs(task.id)
    with store.engine.begin() as conn:  # the agent already failed twice at this stage
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(agent_failures=2))
    calls: list[int] = []

    def bug_once(context: JobContext, job: Job) -> JobEnd:
        calls.append(job.id)
        if len(calls) == 1:
            raise RuntimeError("a bug inside orchestrator")
        return launch_job(context, job)

    worker = Worker(store, settings_for(db_url, orch_home), drain=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(worker_module, "launch_job", bug_once)
        assert worker.run() == 0
    assert store.get_task(task.id).state is TaskState.DONE  # not blocked: its own budget
    analysis = store.get_job(calls[1])
    assert (analysis.agent_failures, analysis.internal_failures) == (2, 1)
