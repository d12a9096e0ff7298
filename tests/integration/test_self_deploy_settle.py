"""A self deploy survives a kill at any point, and is settled exactly once.

The pending record is written before the default branch moves (fenced by the job's
attempt); boot abandons it when the branch never moved, completes it only on the merged
code, and otherwise rolls back; a rollback never overrides a verdict already committed.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from orchestrator.errors import StaleState
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.proc.service import stop_service
from orchestrator.runners.deploy_finalizer import has_landed, merge_branch
from orchestrator.selfhost.boot import complete_pending_deploys
from orchestrator.selfhost.code import code_checkout, code_commit
from orchestrator.selfhost.deploy_job import checkout_refusal
from orchestrator.selfhost.deploy_log import COMMAND_UNFINISHED
from orchestrator.selfhost.rollback import roll_back
from orchestrator.selfhost.supervisor import Supervisor
from orchestrator.settings import Settings, load_settings
from orchestrator.store import Job, NewTask, RepoSpec, SelfDeploy, SelfDeployState, Store, tallies
from orchestrator.store.schema import jobs, tasks
from tests.helpers import SILENT_SERVICE, git

TASK = "k3m9qz2a"
BRANCH = f"orch/{TASK}"


class Killed(Exception):
    """Stands for the kill: the process stops right here."""


@pytest.fixture
def self_repo(make_repo: Callable[..., Path], store: Store, tmp_path: Path) -> Path:
    """The self repo (not the running code's checkout) with a task branch one commit ahead."""
    path = make_repo("self", files={"app.py": "VERSION = 1\n"})
    git(path, "checkout", "-q", "-b", BRANCH)
    (path / "app.py").write_text("VERSION = 2\n")
    git(path, "commit", "-q", "-am", "the change")
    git(path, "checkout", "-q", "main")
    store.add_repo("self", RepoSpec(path=str(path), default_branch="main", is_self=True))
    repo_id = store.get_repo("self").id
    store.create_task(NewTask(TASK, repo_id, "t", "", BRANCH, str(tmp_path / "wt")), "x")
    return path


@pytest.fixture
def job(store: Store, self_repo: Path) -> Job:
    """The task's deploy job, running (as `orch serve` claims it)."""
    with store.engine.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == TASK).values(stage=Stage.DEPLOY))
        conn.execute(update(jobs).where(jobs.c.task_id == TASK).values(stage=Stage.DEPLOY))
    [claimed] = store.claim_jobs("w1", "here", 1, 60.0, self_deploy=True)
    return claimed


def rev(path: Path, ref: str = "main") -> str:
    return git(path, "rev-parse", ref).strip()


def merge(
    store: Store, repo: Path, job: Job, kill_before_move: bool = False, command: bool = False
) -> tuple[str, str]:
    """The deploy-finalizer's merge with its pending record; (base, merged). `command`: the
    record says a deploy command still runs (False once the job asked for the restart)."""
    seen: list[tuple[str, str]] = []

    def record(base: str, merged: str) -> None:
        assert rev(repo) == base  # recorded while the branch has not moved yet
        store.record_self_deploy(job, base, merged, command=command)
        seen.append((base, merged))
        if kill_before_move:
            raise Killed

    with contextlib.suppress(Killed):
        merge_branch(repo, BRANCH, "main", "Merge", before_move=record)
    return seen[0]


def settings(orch_home: Path, db_url: str) -> Settings:
    return load_settings(home=orch_home, db_url=db_url, monitor_window_s=0.2)


def restarted_on_the_merge(
    store: Store, repo: Path, job: Job, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> SelfDeploy:
    """The merge, then the boot of the service restarted on it: the deploy is completed."""
    _, merged = merge(store, repo, job)
    monkeypatch.setattr("orchestrator.selfhost.boot.code_commit", lambda: merged)
    complete_pending_deploys(store, settings)
    [deploy] = store.self_deploys()
    return deploy


def judge(store: Store, state: TaskState) -> None:
    """The in-service post-deploy-monitor's verdict on the task, as the task's row shows it
    (written by hand, with the running totals it moves)."""
    with store.engine.begin() as conn:
        conn.execute(
            update(tasks).where(tasks.c.id == TASK).values(stage=Stage.POST_DEPLOY, state=state)
        )
        tallies.recount(conn)


def test_the_pending_deploy_is_recorded_before_the_branch_moves(
    store: Store, self_repo: Path, job: Job
) -> None:
    base, merged = merge(store, self_repo, job)
    [deploy] = store.self_deploys(SelfDeployState.PENDING)
    assert (deploy.old_commit, deploy.merged_commit) == (base, merged)
    assert base != merged and rev(self_repo) == merged


def test_recording_a_self_deploy_is_fenced_by_the_attempt(
    store: Store, self_repo: Path, job: Job
) -> None:
    before = rev(self_repo)
    stale = replace(job, attempt=job.attempt + 1)
    with pytest.raises(StaleState):
        merge(store, self_repo, stale)
    assert rev(self_repo) == before  # a stale attempt never moves the branch
    store.abandon_job(job, "taken over")
    with pytest.raises(StaleState):
        store.record_self_deploy(job, before, before)
    assert store.self_deploys() == []


def test_a_kill_before_the_branch_moved_is_abandoned_at_boot_and_the_job_runs_again(
    store: Store, self_repo: Path, job: Job, orch_home: Path, db_url: str
) -> None:
    base, merged = merge(store, self_repo, job, kill_before_move=True)
    assert rev(self_repo) == base and not has_landed(self_repo, merged, "main")

    complete_pending_deploys(store, settings(orch_home, db_url))

    [deploy] = store.self_deploys()
    assert deploy.state == "abandoned" and "before the branch moved" in (deploy.reason or "")
    assert store.get_task(TASK).state is TaskState.ACTIVE
    assert rev(self_repo) == base
    # No longer pending: crash recovery takes the job over and the deploy runs again.
    assert store.self_deploys(SelfDeployState.PENDING) == []


def test_boot_on_code_other_than_the_merged_commit_rolls_back(
    store: Store, self_repo: Path, job: Job, orch_home: Path, db_url: str
) -> None:
    base, merged = merge(store, self_repo, job)
    assert code_commit() != merged  # this process runs this repository, not the self repo

    complete_pending_deploys(store, settings(orch_home, db_url))

    [deploy] = store.self_deploys()
    assert deploy.state == "rolled_back" and deploy.revert_commit == rev(self_repo)
    assert "not on the merged commit" in (deploy.reason or "")
    assert (self_repo / "app.py").read_text() == "VERSION = 1\n"
    task = store.get_task(TASK)
    assert task.state is TaskState.FAILED
    log = store.get_artifact(TASK, "16-deploy-log.md").text
    assert f"old_commit: {base}" in log and "new_commit: -" in log
    assert "monitor_status: UNHEALTHY" in store.get_artifact(TASK, "17-monitor-report.md").text


def test_boot_on_a_commit_made_on_top_of_the_merge_completes_the_deploy(
    store: Store,
    self_repo: Path,
    job: Job,
    orch_home: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A person committed in the self checkout between the branch move and the restart.
    _, merged = merge(store, self_repo, job)
    (self_repo / "NOTES.md").write_text("mine\n")
    git(self_repo, "add", "NOTES.md")
    git(self_repo, "commit", "-q", "-m", "a person's own commit")
    on_top = rev(self_repo)
    monkeypatch.setattr("orchestrator.selfhost.boot.code_commit", lambda: on_top)

    complete_pending_deploys(store, settings(orch_home, db_url))

    [deploy] = store.self_deploys()
    assert deploy.state == "completed"
    assert rev(self_repo) == on_top  # nothing reverted
    log = store.get_artifact(TASK, "16-deploy-log.md").text
    assert "deploy_status: DEPLOYED" in log and f"new_commit: {on_top}" in log
    assert merged != on_top


def test_a_kill_while_the_deploy_command_ran_is_rolled_back_at_boot_never_deployed(
    store: Store,
    self_repo: Path,
    job: Job,
    orch_home: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The service restarts on the merged code, but its deploy command (an install, say) was
    # cut short: what it left behind is unknown.
    _, merged = merge(store, self_repo, job, command=True)
    monkeypatch.setattr("orchestrator.selfhost.boot.code_commit", lambda: merged)

    complete_pending_deploys(store, settings(orch_home, db_url))

    [deploy] = store.self_deploys()
    assert deploy.state == "rolled_back" and deploy.revert_commit == rev(self_repo)
    assert "before its deploy command finished" in (deploy.reason or "")
    assert (self_repo / "app.py").read_text() == "VERSION = 1\n"
    assert store.get_task(TASK).state is TaskState.FAILED
    log = store.get_artifact(TASK, "16-deploy-log.md").text
    assert COMMAND_UNFINISHED in log and "Rolled back" in log
    assert "monitor_status: UNHEALTHY" in store.get_artifact(TASK, "17-monitor-report.md").text


def test_a_rollback_never_overrides_a_verdict_already_committed(
    store: Store, self_repo: Path, job: Job, orch_home: Path, db_url: str
) -> None:
    _, merged = merge(store, self_repo, job)
    [deploy] = store.self_deploys()
    events = len(store.events(TASK))
    judge(store, TaskState.DONE)  # the in-service monitor judged it HEALTHY first

    assert store.fail_self_deploy(deploy, "log", "report", "unhealthy", None) is None
    assert not roll_back(store, settings(orch_home, db_url), deploy, "died", "http://x/health")

    assert store.get_task(TASK).state is TaskState.DONE
    assert len(store.events(TASK)) == events
    assert [d.state for d in store.self_deploys()] == ["pending"]
    assert rev(self_repo) == merged  # nothing reverted


def test_a_self_deploy_is_refused_unless_the_service_runs_from_the_self_repo(
    store: Store, self_repo: Path, job: Job
) -> None:
    refused = checkout_refusal(store.get_repo("self"), job)
    assert refused is not None and refused.artifact is not None
    assert "deploy_status: FAILED" in refused.artifact and str(self_repo) in refused.artifact
    running = code_checkout()
    assert running is not None
    store.update_repo("self", RepoSpec(path=str(running)))
    assert checkout_refusal(store.get_repo("self"), job) is None


HEALTHY_SERVICE = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_a_monitor_that_fails_the_task_after_the_supervisors_watch_gets_the_merge_reverted(
    store: Store,
    self_repo: Path,
    job: Job,
    orch_home: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick = load_settings(
        home=orch_home,
        db_url=db_url,
        monitor_window_s=0.3,
        monitor_interval_s=0.1,
        self_start_timeout_s=10,
        kill_grace_s=1,
    )
    deploy = restarted_on_the_merge(store, self_repo, job, monkeypatch, quick)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-c", HEALTHY_SERVICE, str(port)]
    boss = Supervisor(store, quick, argv, f"http://127.0.0.1:{port}/health")

    def monitor_fails_it() -> None:  # the in-service monitor's verdict, after the watch
        time.sleep(1.0)
        judge(store, TaskState.FAILED)

    verdict = threading.Thread(target=monitor_fails_it)
    verdict.start()
    try:
        boss._after_restart(deploy)
        verdict.join()
        [after] = store.self_deploys()
        assert after.state == "rolled_back" and after.revert_commit == rev(self_repo)
        assert (self_repo / "app.py").read_text() == "VERSION = 1\n"
        assert any(a.kind == "self_deploy_rolled_back" for a in store.list_alerts(task_id=TASK))
        assert boss.child is not None and boss.child.poll() is None  # back up, on the old code
    finally:
        verdict.join()
        if boss.child is not None:
            stop_service(boss.child, 1.0)


def test_a_failing_start_the_monitor_already_failed_still_gets_the_merge_reverted(
    store: Store,
    self_repo: Path,
    job: Job,
    orch_home: Path,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The monitor judged the task first (UNHEALTHY); the supervisor's own watch then finds
    # the service not answering: its rollback records nothing, but the merge is reverted.
    quick = load_settings(home=orch_home, db_url=db_url, self_start_timeout_s=0.3, kill_grace_s=1)
    deploy = restarted_on_the_merge(store, self_repo, job, monkeypatch, quick)
    judge(store, TaskState.FAILED)
    boss = Supervisor(store, quick, SILENT_SERVICE, "http://127.0.0.1:9/health")
    events = len(store.events(TASK))
    try:
        boss._after_restart(deploy)
        [after] = store.self_deploys()
        assert after.state == "rolled_back" and after.revert_commit == rev(self_repo)
        assert (self_repo / "app.py").read_text() == "VERSION = 1\n"
        assert len(store.events(TASK)) == events  # no second verdict
        assert boss.child is not None and boss.child.poll() is None
    finally:
        if boss.child is not None:
            stop_service(boss.child, 1.0)
