"""`orch worker` as a real process: draining, SIGKILL at random moments, SIGTERM, cancel."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from sqlalchemy import update

from orchestrator.pipeline.stages import Stage
from orchestrator.proc import host_identity, process_alive
from orchestrator.scheduler.recovery import Identity, sweep_strays, take_over
from orchestrator.settings import load_settings
from orchestrator.store import Job, NewTask, RepoSpec, Store, open_store
from orchestrator.store.schema import jobs, tasks
from tests.conftest import ORCH_EXE
from tests.helpers import command_agent

OrchExe = Callable[..., subprocess.CompletedProcess[str]]
EXPECTED_MOVES = [
    (None, "analysis"),
    ("analysis", "design"),
    ("design", "development"),
    ("development", "review"),
    ("review", "testing"),
    ("testing", "deploy-staging"),
    ("deploy-staging", "done"),
]


@pytest.fixture
def pipeline(
    orch_exe: OrchExe,
    make_repo: Callable[..., Path],
    fake_bin: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A registered repo and a command-backend agent that follows only the contract."""
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "command")
    monkeypatch.setenv("ORCH_AGENT_COMMAND", "fake-agent {role} {round}")
    monkeypatch.setenv("ORCH_DEFER_BACKOFF_S", "0.1")
    monkeypatch.setenv("ORCH_KILL_GRACE_S", "0.5")
    monkeypatch.setenv("ORCH_TEST_RUNNER_ENABLED", "false")  # the LLM tester is the path here
    repo = make_repo("app")
    added = orch_exe("repo", "add", "app", str(repo), "--skip-stages", "deploy,post-deploy")
    assert added.returncode == 0, added.stderr
    return repo


def add_tasks(orch_exe: OrchExe, count: int) -> list[str]:
    ids = []
    for n in range(count):
        created = orch_exe("task", "add", "app", f"Task {n}", "--json")
        assert created.returncode == 0, created.stderr
        ids.append(json.loads(created.stdout)["id"])
    return ids


def show(orch_exe: OrchExe, task_id: str) -> dict[str, object]:
    return json.loads(orch_exe("task", "show", task_id, "--json").stdout)


def task_processes(task_ids: list[str]) -> list[psutil.Process]:
    """Live processes (zombies aside) started for any of these tasks."""
    found = []
    for process in psutil.process_iter():
        try:
            ours = process.environ().get("ORCH_TASK_ID") in task_ids
            if ours and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def store_now() -> Store:
    return open_store(load_settings())


def held_by(job: Job, worker_pid: int) -> bool:
    """The job is held by the worker process `worker_pid`.

    A worker's id is `<hostname>-<pid>-<random>` (scheduler/worker.py); a killed worker's
    rows stay `running` until the next worker takes them over, so the pid is what tells the
    current worker's jobs from the dead ones'.
    """
    return job.worker_id is not None and job.worker_id.rsplit("-", 2)[-2] == str(worker_pid)


def live_agent(job: Job) -> bool:
    """The job's agent process (the one the worker started) is still running."""
    return bool(job.pid and job.proc_started_at and process_alive(job.pid, job.proc_started_at))


def wait_for_running_agent(store: Store, worker_pid: int, deadline_s: float = 20.0) -> Job:
    """A running job of the worker `worker_pid` whose agent is alive at the time of return."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for job in store.running_jobs():
            if held_by(job, worker_pid) and live_agent(job):
                return job
        time.sleep(0.02)
    raise AssertionError(f"worker {worker_pid} started no agent")


def test_drain_takes_tasks_to_done_with_a_review_round_trip(
    pipeline: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    ids = add_tasks(orch_exe, 3)
    drained = orch_exe("worker", "--drain")
    assert drained.returncode == 0, drained.stderr
    for task_id in ids:
        task = show(orch_exe, task_id)
        assert (task["state"], task["round"]) == ("done", 2)
        moves = [(e["from_stage"], e["to_stage"]) for e in task["events"]]  # type: ignore[index]
        assert ("review", "development") in moves
    assert "3 done" in drained.stderr


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    db_url: str, pipeline: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "0.4")
    monkeypatch.setenv("FAKE_AGENT_SPAWN_CHILD", "1")  # grandchildren must die too
    ids = add_tasks(orch_exe, 4)
    store = store_now()
    rng = random.Random(7)
    for _ in range(4):
        worker = subprocess.Popen([ORCH_EXE, "worker"], stderr=subprocess.DEVNULL)
        try:
            wait_for_running_agent(store, worker.pid)
            time.sleep(rng.uniform(0.0, 0.6))
            # The random moment may fall between two stages: then the kill waits for the
            # next agent, so that every kill lands while one of this worker's agents lives.
            victim = wait_for_running_agent(store, worker.pid)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        # The dead worker never finished the job it held: the kill hit it mid-job.
        after = store.get_job(victim.id)
        assert (after.status, after.worker_id) == ("running", victim.worker_id)
    store.close()

    drained = orch_exe("worker", "--drain")
    assert drained.returncode == 0, drained.stderr
    for task_id in ids:
        task = show(orch_exe, task_id)
        assert task["state"] == "done"
        moves = [(e["from_stage"], e["to_stage"]) for e in task["events"]]  # type: ignore[index]
        assert moves == EXPECTED_MOVES  # every move exactly once, in order
    assert task_processes(ids) == []


def test_sigterm_stops_cleanly_and_requeues_the_running_jobs(
    pipeline: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "30")
    ids = add_tasks(orch_exe, 2)
    store = store_now()
    worker = subprocess.Popen([ORCH_EXE, "worker"], stderr=subprocess.PIPE, text=True)
    wait_for_running_agent(store, worker.pid)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=20)
    assert worker.returncode == 0, err
    assert time.monotonic() - started < 10
    assert task_processes(ids) == []
    jobs = [job for task_id in ids for job in store.task_jobs(task_id)]
    assert {j.status for j in jobs} == {"abandoned", "queued"}
    assert sum(1 for j in jobs if j.status == "queued") == 2
    store.close()


def test_cancel_kills_the_running_agent_and_removes_the_worktree(
    pipeline: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "30")
    monkeypatch.setenv("ORCH_LEASE_S", "600")  # the worker's heartbeat cannot be what kills it
    [task_id] = add_tasks(orch_exe, 1)
    store = store_now()
    worker = subprocess.Popen([ORCH_EXE, "worker"], stderr=subprocess.DEVNULL)
    try:
        wait_for_running_agent(store, worker.pid)
        cancelled = orch_exe("task", "cancel", task_id)
        assert cancelled.returncode == 0, cancelled.stderr
        deadline = time.monotonic() + 10
        while task_processes([task_id]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert task_processes([task_id]) == []
        task = show(orch_exe, task_id)
        assert task["state"] == "cancelled"
        assert not Path(str(task["worktree"])).exists()
        again = orch_exe("task", "cancel", task_id)
        assert again.returncode == 2 and "already cancelled" in again.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
        store.close()


def test_queue_and_status_show_the_pipeline(
    pipeline: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tasks(orch_exe, 2)
    queued = json.loads(orch_exe("queue", "--json").stdout)
    assert set(queued) >= {"running", "queued", "deferred", "serial_gate"}
    assert len(queued["queued"]) == 2 and queued["serial_gate"]["app"]["holder"] is None
    assert "analysis" in orch_exe("queue").stdout
    status = json.loads(orch_exe("status", "--json").stdout)
    assert status["tasks"]["by_state"] == {"active": 2}
    assert status["jobs"]["queued"] == 2
    monkeypatch.setenv("ORCH_AGENT_COMMAND", "no-such-agent {role}")
    assert orch_exe("worker", "--drain").returncode == 0
    people = orch_exe("status").stdout
    assert "blocked" in people and "cli_missing" in people
    assert os.environ["ORCH_AGENT_BACKEND"] == "command"


def test_a_dead_workers_failure_summarizer_is_killed_by_the_leftover_sweep(
    pipeline: Path, orch_exe: OrchExe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The summarizer (A7) runs inside the developer's job; it is an agent like any other,
    # and must be found after its worker died and another machine reclaimed the job.
    monkeypatch.setenv("FAKE_AGENT_REVIEW_REJECTS", "1")
    monkeypatch.setenv("ORCH_FAILURE_SUMMARY_ENABLED", "true")
    monkeypatch.setenv("ORCH_LEASE_S", "1")
    pid_file = tmp_path / "summarizer.pid"
    command_agent(
        tmp_path,
        monkeypatch,
        "import os, sys, time\n"
        "if os.environ['ORCH_ROLE'] == 'summarizer':\n"
        f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "os.execvp('fake-agent', ['fake-agent'])\n",
    )
    [task_id] = add_tasks(orch_exe, 1)
    worker = subprocess.Popen([ORCH_EXE, "worker"], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the summarizer never started"
            assert worker.poll() is None, "the worker exited"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    summarizer = psutil.Process(int(pid_file.read_text()))
    try:
        store = store_now()
        [developer] = [j for j in store.running_jobs() if j.task_id == task_id]
        assert developer.pid == summarizer.pid  # recorded like the job's own agent
        time.sleep(1.2)  # its lease runs out: a worker on another machine reclaims the job
        take_over(store, Identity("elsewhere-1", "another-machine"), 0.1)
        assert summarizer.is_running()  # that machine cannot reach it

        sweep_strays(store, Identity("starting-1", host_identity()), 0.5)
        summarizer.wait(timeout=10)  # raises when it still runs
        store.close()
    finally:
        if summarizer.is_running():
            summarizer.kill()


def test_drain_with_only_a_self_deploy_left_exits_1_naming_it(
    pipeline: Path, orch_exe: OrchExe, make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    [task_id] = add_tasks(orch_exe, 1)
    store = store_now()
    store.add_repo("me", RepoSpec(path=str(make_repo("me")), default_branch="main", is_self=True))
    mine = NewTask("self2222", store.get_repo("me").id, "t", "", "orch/self2222", str(tmp_path))
    store.create_task(mine, "x")
    with store.engine.begin() as conn:  # its deploy is next: only `orch serve` may run it
        conn.execute(update(tasks).where(tasks.c.id == mine.id).values(stage=Stage.DEPLOY))
        conn.execute(update(jobs).where(jobs.c.task_id == mine.id).values(stage=Stage.DEPLOY))
    store.close()

    drained = orch_exe("worker", "--drain")

    assert drained.returncode == 1, drained.stderr
    assert show(orch_exe, task_id)["state"] == "done"  # the rest was drained first
    [line] = [x for x in drained.stderr.splitlines() if x.startswith("error:")]
    assert "self2222" in line and "orch serve" in line
