"""Several `orch worker` processes on one PostgreSQL database: claims, leases, fencing,
crashes, and repositories that live on a remote."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select, update

from orchestrator.settings import load_settings
from orchestrator.store import Job, Store, open_store
from orchestrator.store.schema import events, jobs
from orchestrator.store.schema import workers as workers_table
from tests.conftest import ORCH_EXE
from tests.helpers import git

ELSEWHERE = "another-machine"


@pytest.fixture
def pg_env(pg_url: str, fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every process of the test on one PostgreSQL schema, with the contract-only agent."""
    runs = tmp_path / "agent-runs.log"
    for key, value in {
        "ORCH_DB_URL": pg_url,
        "ORCH_AGENT_BACKEND": "command",
        "ORCH_AGENT_COMMAND": "fake-agent {role}",
        "ORCH_TEST_RUNNER_ENABLED": "false",
        "ORCH_DEFER_BACKOFF_S": "0.1",
        "ORCH_KILL_GRACE_S": "0.5",
        "FAKE_AGENT_RUN_LOG": str(runs),
    }.items():
        monkeypatch.setenv(key, value)
    return runs


@pytest.fixture
def store(pg_env: Path) -> Iterator[Store]:
    opened = open_store(load_settings())
    yield opened
    opened.close()


def orch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORCH_EXE, *args], capture_output=True, text=True, timeout=300, check=False, env=env
    )


def workers(
    count: int, *args: str, env: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen([ORCH_EXE, "worker", *args], stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(count)
    ]


def drained(started: list[subprocess.Popen[str]], store: Store, timeout: float = 240) -> None:
    """Wait for every `--drain` worker to exit cleanly. One that does not is killed with the
    rest (no worker outlives the test), and the failure says what the pipeline held: which
    tasks were still active, where, who held a serial gate, and each live job."""
    deadline = time.monotonic() + timeout
    try:
        for process in started:
            _, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, err
    except subprocess.TimeoutExpired:
        for process in started:
            process.kill()
            process.communicate()
        active = [
            (t.id, str(t.stage), str(t.state), t.gate_acquired_at is not None, t.reason)
            for t in store.list_tasks()
            if not t.state.is_final
        ]
        queue = store.queue()
        live = [
            (q.job.task_id, str(q.job.stage), q.job.status.value, q.job.not_before, q.job.worker_id)
            for q in (*queue.running, *queue.queued, *queue.deferred)
        ]
        pytest.fail(f"the drain did not end in {timeout:.0f} s; active: {active}; live: {live}")


def add_tasks(count: int, repo: str = "app", env: dict[str, str] | None = None) -> list[str]:
    return [
        json.loads(orch("task", "add", repo, f"Task {n}", "--json", env=env).stdout)["id"]
        for n in range(count)
    ]


def assert_each_move_once(store: Store, task_ids: list[str]) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(select(events.c.task_id, events.c.from_stage, events.c.round)).all()
    moves = Counter((t, s, r) for t, s, r in rows if t in task_ids)
    assert [key for key, n in moves.items() if n > 1] == []
    for task_id in task_ids:
        task = store.get_task(task_id)
        assert task.state.value == "done", (task_id, task.state, task.reason)


def assert_no_attempt_ran_twice(runs: Path) -> None:
    """Each (task, stage, round) ran its agent exactly once: no double claim."""
    lines = [tuple(line.split()[:3]) for line in runs.read_text().splitlines()]
    assert lines and [key for key, n in Counter(lines).items() if n > 1] == []


def register(make_repo: Callable[..., Path], skip: str = "deploy,post-deploy") -> Path:
    path = make_repo("app")
    added = orch("repo", "add", "app", str(path), "--skip-stages", skip)
    assert added.returncode == 0, added.stderr
    return path


def test_four_workers_share_forty_tasks_without_a_double_claim(
    pg_env: Path, store: Store, make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "0.05")
    # The LLM deployer stages (the repo is out of the staging-runner's scope), so that every
    # staging run is an agent run in the log, where the serial gate is checked below.
    monkeypatch.setenv("ORCH_STAGING_RUNNER_REPOS", "elsewhere")
    register(make_repo)
    ids = add_tasks(40)
    drained(workers(4, "--drain"), store)
    assert_each_move_once(store, ids)
    assert_no_attempt_ran_twice(pg_env)
    with store.engine.connect() as conn:
        claimed_by = {row.worker_id for row in conn.execute(select(jobs.c.worker_id))}
    assert len(claimed_by - {None}) >= 2  # the work was shared
    # The serial gate held across workers: no two staging agents ever ran at the same time.
    staging = sorted(
        (float(start), float(end))
        for _, stage, _, _, start, end in (line.split() for line in pg_env.read_text().splitlines())
        if stage == "deploy-staging"
    )
    assert len(staging) == 40
    for (_, first_end), (second_start, _) in itertools.pairwise(staging):
        assert second_start >= first_end


def running_job_of(store: Store, pid: int, deadline_s: float = 30) -> Job:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        worker = next((w for w in store.list_workers() if w.pid == pid), None)
        held = [j for j in store.running_jobs() if worker and j.worker_id == worker.id and j.pid]
        if held:
            return held[0]
        time.sleep(0.05)
    raise AssertionError(f"worker {pid} never ran a job")


def as_if_on_another_machine(store: Store, job: Job) -> None:
    """Record the job's worker on another host: no worker here may use the same-host
    shortcut (its process is gone) or kill its processes; only the lease can free the job."""
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.worker_id == job.worker_id).values(host=ELSEWHERE))
        conn.execute(update(workers_table).where(workers_table.c.id == job.worker_id).values(
            host=ELSEWHERE))  # fmt: skip


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_killed_workers_job_is_taken_over_once_its_lease_runs_out(
    pg_env: Path, store: Store, make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "0.8")
    monkeypatch.setenv("ORCH_LEASE_S", "3")
    register(make_repo, skip="deploy-staging,deploy,post-deploy")
    ids = add_tasks(4)
    [victim] = workers(1)
    job = running_job_of(store, victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    as_if_on_another_machine(store, job)
    lease_end = store.get_job(job.id).lease_expires_at
    assert lease_end is not None
    survivors = workers(2, "--drain")
    for process in survivors:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    taken = store.get_job(job.id)
    assert taken.status == "abandoned"
    assert taken.finished_at is not None and taken.finished_at >= lease_end  # by the lease
    assert_each_move_once(store, ids)


def test_a_paused_worker_that_lost_its_lease_does_not_commit_a_stale_result(
    pg_env: Path, store: Store, make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "3")
    monkeypatch.setenv("ORCH_LEASE_S", "1.5")
    register(make_repo, skip="design,review,deploy-staging,deploy,post-deploy")
    [task_id] = add_tasks(1)
    [paused] = workers(1)
    stale = running_job_of(store, paused.pid)
    paused.send_signal(signal.SIGSTOP)
    try:
        as_if_on_another_machine(store, stale)  # the taker cannot kill its agent
        [taker] = workers(1, env={**os.environ, "FAKE_AGENT_SLEEP": "0"})
        wait_for(lambda: store.get_job(stale.id).status == "abandoned")  # the lease ran out
        wait_for(lambda: store.get_task(task_id).state.value == "done")
        # The paused worker's agent ran to its end: a result it could try to commit.
        wait_for(lambda: any(line.split()[3] == str(stale.pid) for line in runs(pg_env)))
    finally:
        paused.send_signal(signal.SIGCONT)
    time.sleep(2)  # give the resumed worker every chance to commit what it had
    for process in (paused, taker):
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert_each_move_once(store, [task_id])
    assert store.get_job(stale.id).outcome == "abandoned"  # the stale attempt never committed


def runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_workers_on_separate_homes_work_through_a_shared_remote(
    pg_env: Path, store: Store, make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    origin = tmp_path / "remote.git"
    git(tmp_path, "clone", "--bare", "--quiet", str(make_repo("app")), str(origin))
    homes = [tmp_path / f"machine-{n}" for n in range(3)]
    envs = [{**os.environ, "ORCH_HOME": str(home)} for home in homes]
    added = orch("repo", "add", "app", str(origin), "--skip-stages", "deploy-staging", env=envs[0])
    assert added.returncode == 0, added.stderr
    ids = add_tasks(3, env=envs[0])
    processes = [p for env in envs[1:] for p in workers(1, "--drain", env=env)]
    for process in processes:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    assert_each_move_once(store, ids)
    for task_id in ids:
        log = git(origin, "log", "--format=%s", f"orch/{task_id}")
        assert "developer: Task" in log  # the agent's commit reached the remote
        assert f"Merge orch/{task_id}" in git(origin, "log", "--format=%s", "main")
    assert any((home / "repos" / "app.git").is_dir() for home in homes[1:])


def agent_of(task_id: str) -> psutil.Process:
    for process in psutil.process_iter():
        try:
            if process.environ().get("ORCH_TASK_ID") == task_id:
                return process
        except psutil.Error:
            continue
    raise AssertionError(f"no agent of task {task_id} runs")


@pytest.fixture
def twin_prefix() -> list[str]:
    """The argv prefix that runs a command as on a twin machine with this one's hostname: a
    PID namespace of its own (it sees other processes, none sees its ones by their pids)."""
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"needs unshare --pid (root or user namespaces): {probe.stderr!r}")
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"]


def test_two_machines_with_one_hostname_are_two_hosts(
    pg_env: Path,
    store: Store,
    make_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    twin_prefix: list[str],
) -> None:
    # Containers and cloned VMs often share a hostname. A worker here that took the twin for
    # this host would judge its live worker dead by a pid it cannot see, and kill its agent.
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "20")
    monkeypatch.setenv("ORCH_LEASE_S", "3")
    register(make_repo, skip="deploy-staging,deploy,post-deploy")
    [task_id] = add_tasks(1)
    twin = subprocess.Popen([*twin_prefix, ORCH_EXE, "worker"], stderr=subprocess.DEVNULL)
    here = None
    try:
        wait_for(lambda: any(j.pid for j in store.running_jobs()), timeout=30)
        [job] = store.running_jobs()
        agent = agent_of(task_id)
        here = subprocess.Popen([ORCH_EXE, "worker"], stderr=subprocess.DEVNULL)
        time.sleep(4.0)  # a start-up take-over and heartbeats of the worker here
        now = store.get_job(job.id)
        assert (now.status, now.attempt, now.worker_id) == ("running", job.attempt, job.worker_id)
        assert agent.is_running(), "the worker here killed the twin's agent"
        assert store.task_jobs(task_id) == [now]
    finally:
        if here is not None:
            here.send_signal(signal.SIGTERM)
            here.wait(timeout=30)
        # unshare waits for its child and ignores SIGTERM: the twin worker is signalled.
        for child in psutil.Process(twin.pid).children():
            child.send_signal(signal.SIGTERM)
        twin.wait(timeout=30)
