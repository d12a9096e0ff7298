"""Repos that live elsewhere: registration, intake through a clone, and wake-ups."""

from __future__ import annotations

import logging
import re
import threading
import time
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from orchestrator.errors import GitError, InputError, StaleState, StoreError
from orchestrator.intake import submit_task
from orchestrator.proc import CancelToken
from orchestrator.registry import RepoOptions, register_repo
from orchestrator.runners.deploy_finalizer import merge_remote
from orchestrator.settings import load_settings
from orchestrator.store import Job, Repo, Store, Task, open_store
from orchestrator.store.schema import jobs
from orchestrator.workspace import checkout
from tests.helpers import entries, git


@pytest.fixture
def origin(make_repo: Callable[..., Path], tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "--bare", "--quiet", str(make_repo("app", branch="trunk")), str(bare))
    return bare


def test_a_bare_repository_registers_as_a_remote_with_its_head_branch(
    store: Store, origin: Path
) -> None:
    repo = register_repo(store, "app", str(origin), RepoOptions())
    assert (repo.is_remote, repo.default_branch, repo.path) == (True, "trunk", str(origin))


def test_a_remote_without_the_branch_or_unreachable_is_refused(store: Store, origin: Path) -> None:
    with pytest.raises(InputError, match=r"no branch '?main"):
        register_repo(store, "app", str(origin), RepoOptions(default_branch="main"))
    with pytest.raises(InputError, match="cannot read the git remote"):
        register_repo(store, "gone", "https://127.0.0.1:9/nothing.git", RepoOptions())
    assert store.list_repos() == []


def test_intake_on_a_remote_clones_it_and_pushes_the_task_branch(
    store: Store, origin: Path, orch_home: Path
) -> None:
    register_repo(store, "app", str(origin), RepoOptions())
    task = submit_task(store, orch_home, "app", "Remote work", "")
    assert git(origin, "branch", "--list", task.branch).strip().endswith(task.branch)
    assert (orch_home / "repos" / "app.git" / "HEAD").is_file()
    assert git(Path(task.worktree), "rev-parse", "--abbrev-ref", "HEAD").strip() == task.branch


def test_a_failed_intake_on_a_remote_leaves_no_branch_there(
    store: Store, origin: Path, orch_home: Path
) -> None:
    register_repo(store, "app", str(origin), RepoOptions())
    orch_home.mkdir(parents=True, exist_ok=True)
    (orch_home / "tasks").write_text("in the way")
    with pytest.raises(OSError):
        submit_task(store, orch_home, "app", "Remote work", "")
    assert git(origin, "branch", "--list", "orch/*").strip() == ""
    assert entries(orch_home / "worktrees") == []


def test_prepare_gives_a_second_machine_the_branch_tip(
    store: Store, origin: Path, orch_home: Path, tmp_path: Path
) -> None:
    repo = register_repo(store, "app", str(origin), RepoOptions())
    task = submit_task(store, orch_home, "app", "Remote work", "")
    (Path(task.worktree) / "work.txt").write_text("first machine\n")
    git(Path(task.worktree), "add", "work.txt")
    git(Path(task.worktree), "commit", "-q", "-m", "work")
    checkout.publish(repo, task)

    other = tmp_path / "other-machine"
    prepared = checkout.prepare(other, repo, task)
    assert Path(prepared.worktree).parent == other / "worktrees"
    assert (Path(prepared.worktree) / "work.txt").read_text() == "first machine\n"


def test_on_sqlite_listening_returns_at_once_for_one_process_wakes_itself(
    tmp_path: Path,
) -> None:
    sqlite = open_store(load_settings(db_url=f"sqlite:///{tmp_path / 'orch.db'}"))
    called: list[int] = []
    listener = threading.Thread(
        target=sqlite.listen_for_jobs, args=(lambda: called.append(1), threading.Event())
    )
    listener.start()
    listener.join(10)
    assert not listener.is_alive() and called == []
    sqlite.close()


@pytest.mark.pg
def test_listening_workers_hear_of_new_jobs(pg_store: Store, origin: Path, orch_home: Path) -> None:
    store = pg_store
    register_repo(store, "app", str(origin), RepoOptions())
    heard = threading.Event()
    stop = threading.Event()
    notices: list[int] = []

    def on_notify() -> None:
        notices.append(1)
        if len(notices) > 1:  # the first call is the catch-up when it starts listening
            heard.set()

    listener = threading.Thread(target=store.listen_for_jobs, args=(on_notify, stop))
    listener.start()
    try:
        while not notices:
            threading.Event().wait(0.01)
        submit_task(store, orch_home, "app", "Wake up", "")
        assert heard.wait(10)
    finally:
        stop.set()
        listener.join(10)


@pytest.mark.pg
def test_a_hang_up_is_not_a_job_and_ends_a_stopped_listener(
    pg_store: Store, origin: Path, orch_home: Path
) -> None:
    # A worker's shutdown hangs its listener up (scheduler/worker.py), so that a drain ends
    # without waiting out the listener's poll; the hang-up is no news of a job.
    store = pg_store
    register_repo(store, "app", str(origin), RepoOptions())
    stop = threading.Event()
    notices: list[int] = []
    heard = threading.Event()

    def on_notify() -> None:
        notices.append(1)
        heard.set()

    listener = threading.Thread(
        target=store.listen_for_jobs, args=(on_notify, stop), kwargs={"hang_up": "orch_stop_t1"}
    )
    listener.start()
    try:
        assert heard.wait(10)  # the catch-up call made on listening
        heard.clear()
        store.hang_up("orch_stop_t1")  # not stopped: it keeps listening
        submit_task(store, orch_home, "app", "Wake up", "")  # delivered after the hang-up
        assert heard.wait(10)
        assert len(notices) == 2 and listener.is_alive()
    finally:
        stop.set()
        store.hang_up("orch_stop_t1")
        listener.join(10)
    assert not listener.is_alive()


def test_a_listener_that_cannot_connect_is_a_store_error() -> None:
    from orchestrator.store import Store as StoreClass
    from orchestrator.store.engine import make_engine

    nowhere = StoreClass(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    with pytest.raises(StoreError, match="listening for jobs failed"):
        nowhere.listen_for_jobs(lambda: None, threading.Event())
    nowhere.close()


def commit_work(worktree: Path, text: str) -> None:
    (worktree / "work.txt").write_text(text)
    git(worktree, "add", "work.txt")
    git(worktree, "commit", "-q", "-m", text.strip())


def test_publish_pushes_only_over_the_tip_it_prepared_from(
    store: Store, origin: Path, orch_home: Path, tmp_path: Path
) -> None:
    repo = register_repo(store, "app", str(origin), RepoOptions())
    task = submit_task(store, orch_home, "app", "Remote work", "")
    start = git(origin, "rev-parse", task.branch).strip()
    current = checkout.prepare(tmp_path / "machine-b", repo, task)
    commit_work(Path(current.worktree), "the current attempt\n")
    checkout.publish(repo, current)
    late = checkout.prepare(tmp_path / "machine-a", repo, task)
    commit_work(Path(late.worktree), "a later job\n")
    # The branch moves after machine A checked it out (here: back to where it started), so a
    # plain push from A would be a fast-forward and land; the lease refuses it.
    git(origin, "update-ref", f"refs/heads/{task.branch}", start)
    with pytest.raises(GitError, match="failed to push"):
        checkout.publish(repo, late)
    assert git(origin, "rev-parse", task.branch).strip() == start


def claimed_remote_task(
    store: Store, origin: Path, orch_home: Path, tmp_path: Path, lease_s: float
) -> tuple[Repo, Task, Job, Task]:
    """A remote repo's task, its job claimed on machine A, and work committed there."""
    repo = register_repo(store, "app", str(origin), RepoOptions())
    task = submit_task(store, orch_home, "app", "Remote work", "")
    [job] = store.claim_jobs("w-a", "machine-a", 1, lease_s)
    prepared = checkout.prepare(tmp_path / "machine-a", repo, task)
    commit_work(Path(prepared.worktree), "work\n")
    return repo, task, job, prepared


def assert_pushes_nothing(
    origin: Path, repo: Repo, task: Task, prepared: Task, fence: Callable[[], None], tmp: Path
) -> None:
    """Behind `fence`, neither the task branch's push nor the merge's lands on the remote."""
    before = {ref: git(origin, "rev-parse", ref) for ref in (task.branch, "trunk")}
    with checkout.fenced(fence):
        with pytest.raises(StaleState):
            checkout.publish(repo, prepared)
        clone = checkout.sync_clone(tmp / "machine-a", repo)
        with pytest.raises(StaleState):
            merge_remote(clone, task.branch, "trunk", "Merge it")
    assert {ref: git(origin, "rev-parse", ref) for ref in before} == before


def test_no_push_of_a_job_whose_attempt_is_no_longer_current(
    store: Store, origin: Path, orch_home: Path, tmp_path: Path
) -> None:
    repo, task, job, prepared = claimed_remote_task(store, origin, orch_home, tmp_path, 30)
    with checkout.fenced(lambda: store.hold(job, 30)):
        checkout.publish(repo, prepared)  # while the attempt is current, it pushes
    commit_work(Path(prepared.worktree), "more work\n")
    store.abandon_job(job, "taken over by another machine")
    assert_pushes_nothing(origin, repo, task, prepared, lambda: store.hold(job, 30), tmp_path)


def test_psycopg_is_pinned_to_a_version_with_notifies_timeout() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    [pin] = [d for d in pyproject["project"]["dependencies"] if d.startswith("psycopg")]
    floor = re.fullmatch(r"psycopg\[binary\]>=(\d+)\.(\d+)(\.\d+)?", pin)
    assert floor is not None, pin
    assert (int(floor[1]), int(floor[2])) >= (3, 2)  # conn.notifies(timeout=...) is 3.2's


def test_a_worker_that_cannot_listen_warns_once_and_keeps_polling_fast(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from orchestrator.scheduler import Worker
    from orchestrator.settings import load_settings
    from orchestrator.store import Store as StoreClass
    from orchestrator.store.engine import make_engine

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    nowhere = StoreClass(make_engine(url))
    worker = Worker(nowhere, load_settings(db_url=url))
    listener = threading.Thread(target=worker._listen)
    with caplog.at_level(logging.WARNING):
        listener.start()
        time.sleep(2.5)  # three attempts
        assert not worker._listening.is_set()  # so the loop polls at the fast rate
        worker.stop()
        listener.join(10)
    warnings = [r for r in caplog.records if "listening for jobs failed" in r.getMessage()]
    assert len(warnings) == 1
    nowhere.close()


def test_an_attempt_whose_lease_lapsed_pushes_nothing_even_before_another_takes_it(
    store: Store, origin: Path, orch_home: Path, tmp_path: Path
) -> None:
    repo, task, job, prepared = claimed_remote_task(store, origin, orch_home, tmp_path, 0.5)
    with checkout.fenced(lambda: store.hold(job, 30)):
        checkout.publish(repo, prepared)  # its lease is good: it pushes, and renews it
    assert store.get_job(job.id).lease_expires_at > store.now() + timedelta(seconds=20)

    with store.engine.begin() as conn:  # the worker was paused: its lease ran out
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(lease_expires_at=store.now()))
    commit_work(Path(prepared.worktree), "more work\n")
    assert_pushes_nothing(origin, repo, task, prepared, lambda: store.hold(job, 30), tmp_path)
    assert store.get_job(job.id).status == "running"  # nobody took it: the fence alone held


def test_a_push_is_killed_the_moment_its_job_is_stopped(
    store: Store, origin: Path, orch_home: Path, tmp_path: Path
) -> None:
    # The worker stops a job whose lease lapses without a renewal (scheduler/worker.py):
    # a push that hangs must stop with it, not land later over the attempt that replaced it.
    repo, task, job, prepared = claimed_remote_task(store, origin, orch_home, tmp_path, 30)
    hook = checkout.clone_dir(tmp_path / "machine-a", repo) / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\nsleep 60\n")
    hook.chmod(0o755)
    before = git(origin, "rev-parse", task.branch)
    stop = CancelToken()
    threading.Timer(0.5, stop.cancel).start()
    try:
        with (
            checkout.fenced(lambda: store.hold(job, 30), stop),
            pytest.raises(GitError, match="stopped"),
        ):
            checkout.publish(repo, prepared)
    finally:
        stop.close()
    assert git(origin, "rev-parse", task.branch) == before
