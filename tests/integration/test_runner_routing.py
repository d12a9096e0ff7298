"""Who produces a stage: a deterministic runner, the LLM fallback, or nobody (a person).

Run through the real worker with the contract-following command agent. Also covers the repo's
setup command (once per worktree; a failing one blocks the task, never a test verdict) and the
alert webhook (delivered as JSON, never fatal). SPEC sections 5, 7 and 8.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.errors import NotFound
from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.scheduler import Worker
from orchestrator.settings import Settings
from orchestrator.store import RepoSpec, Store, Task
from tests.helpers import fake_agent_settings, git

NO_DEPLOY = frozenset({Stage.DEPLOY, Stage.POST_DEPLOY})
NO_STAGING = frozenset({Stage.DEPLOY_STAGING, *NO_DEPLOY})
NO_STAGING_NO_MONITOR = frozenset({Stage.DEPLOY_STAGING, Stage.POST_DEPLOY})


def py(code: str) -> str:
    """A command running `code` with the worktree's interpreter."""
    return shlex.join(["python", "-c", code])


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "defer_backoff_s": 0.05,
        "defer_backoff_max_s": 0.1,
        "kill_grace_s": 0.5,
        "max_dev_retries": 1,
        **overrides,
    }
    return fake_agent_settings(db_url, home, **values)


def drain(store: Store, settings: Settings) -> None:
    assert Worker(store, settings, drain=True).run() == 0


@pytest.fixture
def add_app(make_repo: Callable[..., Path], store: Store) -> Callable[..., Path]:
    """Register the repo `app` (its suite passes unless told otherwise)."""

    def add(skip: frozenset[Stage], **spec: str) -> Path:
        path = make_repo("app")
        values = {"test_command": py("pass"), **spec}
        store.add_repo(
            "app", RepoSpec(path=str(path), default_branch="main", skip_stages=skip, **values)
        )
        return path

    return add


def submit(store: Store, home: Path, title: str = "Add a feature") -> Task:
    return submit_task(store, home, "app", title, "make it so")


def producer_of(store: Store, task: Task, stage: Stage) -> list[str]:
    return [str(e.producer) for e in store.events(task.id) if e.from_stage == stage]


def prompt(home: Path, task: Task, name: str) -> Path:
    return home / "tasks" / task.id / name


# --- testing: test-runner or the LLM tester --------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "producer"),
    [
        pytest.param({"test_runner_enabled": False}, "tester", id="kill-switch-off"),
        pytest.param({"test_runner_repos": "other"}, "tester", id="repo-out-of-scope"),
        pytest.param({"test_runner_repos": "other,app"}, "test-runner", id="repo-in-scope"),
    ],
)
def test_testing_runs_the_test_runner_only_when_switched_on_for_the_repo(
    overrides: dict[str, object],
    producer: str,
    fake_bin: Path,
    add_app: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
) -> None:
    add_app(NO_STAGING)
    task = submit(store, orch_home)
    drain(store, settings_for(db_url, orch_home, **overrides))

    assert store.get_task(task.id).state is TaskState.DONE
    assert producer_of(store, task, Stage.TESTING) == [producer]
    asked_llm = prompt(orch_home, task, "prompt-tester-r1.txt").exists()
    assert asked_llm is (producer == "tester")
    report = store.get_artifact(task.id, "13-test-report.md").text
    assert ("producer: test-runner" in report) is (producer == "test-runner")


# --- deploy-staging: staging-runner or the LLM deployer --------------------------------------


@pytest.mark.parametrize(
    ("staging_command", "overrides", "producer", "status"),
    [
        pytest.param(
            py("print('STAGED-OK')"), {}, "staging-runner", "PASSED", id="staging-command"
        ),
        # Nothing to stage: SKIPPED by code, never an LLM's rubber stamp.
        pytest.param(None, {}, "staging-runner", "SKIPPED", id="no-staging-command"),
        pytest.param(
            py("print('STAGED-OK')"),
            {"staging_runner_enabled": False},
            "deployer",
            "PASSED",
            id="kill-switch-off",
        ),
        # The repo asks for the LLM deployer by being out of the runner's scope.
        pytest.param(
            None, {"staging_runner_repos": "other"}, "deployer", "PASSED", id="repo-out-of-scope"
        ),
    ],
)
def test_staging_is_the_staging_runners_unless_switched_off_or_out_of_its_scope(
    staging_command: str | None,
    overrides: dict[str, object],
    producer: str,
    status: str,
    fake_bin: Path,
    add_app: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
) -> None:
    add_app(NO_DEPLOY, **({"staging_command": staging_command} if staging_command else {}))
    task = submit(store, orch_home)
    drain(store, settings_for(db_url, orch_home, **overrides))

    assert store.get_task(task.id).state is TaskState.DONE
    assert producer_of(store, task, Stage.DEPLOY_STAGING) == [producer]
    log = store.get_artifact(task.id, "15-staging-log.md").text
    assert f"staging_status: {status}" in log.splitlines()
    by_code = producer == "staging-runner"
    assert ("producer: staging-runner" in log) is by_code
    assert ("STAGED-OK" in log) is (by_code and staging_command is not None)
    assert prompt(orch_home, task, "prompt-deployer-r1.txt").exists() is not by_code


def test_a_failing_staging_suite_sends_the_task_back_with_its_log_in_the_prompt(
    fake_bin: Path, add_app: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    add_app(NO_DEPLOY, staging_command=py("import sys; print('STAGING-BROKE'); sys.exit(1)"))
    task = submit(store, orch_home)
    drain(store, settings_for(db_url, orch_home))

    log = store.get_artifact(task.id, "15-staging-log.md", round=1).text
    assert "staging_status: FAILED" in log.splitlines() and "STAGING-BROKE" in log
    moves = [
        (e.to_stage, e.verdict, e.round)
        for e in store.events(task.id)
        if e.from_stage == Stage.DEPLOY_STAGING
    ]
    assert moves == [("development", "FAILED", 1), ("failed", "FAILED", 2)]
    developer = prompt(orch_home, task, "prompt-developer-r2.txt").read_text()
    assert "Feedback: why round 2 exists" in developer
    assert "staging_status: FAILED" in developer and "STAGING-BROKE" in developer
    failed = store.get_task(task.id)
    assert (failed.state, failed.round) == (TaskState.FAILED, 2)


# --- deploy and post-deploy: their runner or a person, never an LLM --------------------------


@pytest.mark.parametrize(
    ("env", "stage", "runner"),
    [
        pytest.param(
            {"ORCH_DEPLOY_FINALIZER_ENABLED": "false"},
            Stage.DEPLOY,
            "deploy-finalizer",
            id="deploy-kill-switch-off",
        ),
        pytest.param(
            {"ORCH_DEPLOY_FINALIZER_REPOS": "other"},
            Stage.DEPLOY,
            "deploy-finalizer",
            id="deploy-repo-out-of-scope",
        ),
        pytest.param(
            {"ORCH_POST_DEPLOY_MONITOR_ENABLED": "false"},
            Stage.POST_DEPLOY,
            "post-deploy-monitor",
            id="monitor-kill-switch-off",
        ),
        pytest.param(
            {"ORCH_POST_DEPLOY_MONITOR_REPOS": "other"},
            Stage.POST_DEPLOY,
            "post-deploy-monitor",
            id="monitor-repo-out-of-scope",
        ),
    ],
)
def test_deploy_and_post_deploy_without_their_runner_block_for_a_person_with_no_llm_fallback(
    env: dict[str, str],
    stage: Stage,
    runner: str,
    fake_bin: Path,
    add_app: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SPEC 15 "Runner defaults": switched off, their stage blocks the task for a person with
    # an alert. Switched off the way a person would: in the environment.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = add_app(frozenset({Stage.DEPLOY_STAGING}))
    task = submit(store, orch_home)
    drain(store, settings_for(db_url, orch_home))

    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, stage)
    assert f"{runner} is switched off" in (blocked.reason or "")
    assert "no LLM fallback" in (blocked.reason or "")
    [alert] = store.list_alerts(task_id=task.id)
    assert alert.kind == "no_runner" and alert.message == blocked.reason
    assert not prompt(orch_home, task, "prompt-deployer-r1.txt").exists()
    with pytest.raises(NotFound):
        store.get_artifact(task.id, "17-monitor-report.md")  # nobody judged the stage
    history = git(path, "log", "--format=%s", "main").splitlines()
    if stage is Stage.DEPLOY:
        assert history == ["initial commit"]  # nothing merged
    else:
        assert len(history) > 1 and history[0].startswith("Merge orch/")  # deployed, unwatched


# --- the setup command -------------------------------------------------------------------------


def test_the_setup_command_runs_once_per_task_across_all_its_jobs(
    fake_bin: Path,
    add_app: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
) -> None:
    ran = tmp_path / "setup-ran.txt"
    code = f"import os; open({str(ran)!r}, 'a').write(os.getcwd() + '\\n')"
    add_app(NO_STAGING, setup_command=shlex.join([sys.executable, "-c", code]))
    tasks = [submit(store, orch_home, "First"), submit(store, orch_home, "Second")]
    drain(store, settings_for(db_url, orch_home))

    for task in tasks:
        assert store.get_task(task.id).state is TaskState.DONE
        assert len(store.task_jobs(task.id)) == 5  # analysis to testing: five jobs, one setup
    ran_in = sorted(Path(line).resolve() for line in ran.read_text().splitlines())
    assert ran_in == sorted(Path(task.worktree).resolve() for task in tasks)


def test_a_failing_setup_is_deferred_then_blocks_the_task_with_its_log(
    fake_bin: Path, add_app: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    broken = shlex.join([sys.executable, "-c", "print('SETUP-BROKE'); raise SystemExit(1)"])
    add_app(NO_STAGING, setup_command=broken)
    task = submit(store, orch_home)
    drain(store, settings_for(db_url, orch_home, setup_retries=2))

    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, Stage.ANALYSIS)
    reason = blocked.reason or ""
    assert "exited 1" in reason and "SETUP-BROKE" in reason
    logged = re.search(r"\(log: (.+?)\)", reason)
    assert logged is not None and "SETUP-BROKE" in Path(logged.group(1)).read_text()
    assert [(j.stage, j.infra_failures, j.attempt) for j in store.task_jobs(task.id)] == [
        (Stage.ANALYSIS, 2, 3)
    ]
    assert [a.kind for a in store.list_alerts(task_id=task.id)] == ["setup_failed"]
    assert [e.to_stage for e in store.events(task.id)] == ["analysis"]  # no verdict of any kind
    with pytest.raises(NotFound):
        store.get_artifact(task.id, "13-test-report.md")
    assert not prompt(orch_home, task, "prompt-analyst-r1.txt").exists()  # no agent ran


# --- the alert webhook -------------------------------------------------------------------------


@dataclass
class Webhook:
    """A local HTTP endpoint that records what is POSTed to it and answers `status`."""

    url: str = ""
    status: int = 200
    received: list[dict[str, object]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook.received.append(json.loads(body))
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="webhook", daemon=True
    )
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_an_alert_is_posted_to_the_webhook_as_json_and_marked_delivered(
    fake_bin: Path,
    add_app: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    webhook: Webhook,
) -> None:
    add_app(NO_STAGING_NO_MONITOR)
    task = submit(store, orch_home)
    settings = settings_for(
        db_url, orch_home, deploy_finalizer_enabled=False, alert_webhook_url=webhook.url
    )
    drain(store, settings)

    [alert] = store.list_alerts(task_id=task.id)
    assert alert.kind == "no_runner" and alert.delivered_at is not None
    assert [(d["kind"], d["message"], d["task_id"]) for d in webhook.received] == [
        ("no_runner", alert.message, task.id)
    ]


def test_a_failing_webhook_never_holds_up_the_pipeline(
    fake_bin: Path,
    add_app: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    webhook: Webhook,
) -> None:
    webhook.status = 500
    add_app(NO_STAGING_NO_MONITOR)
    task = submit(store, orch_home)
    settings = settings_for(
        db_url, orch_home, deploy_finalizer_enabled=False, alert_webhook_url=webhook.url
    )
    drain(store, settings)

    blocked = store.get_task(task.id)
    assert (blocked.state, blocked.stage) == (TaskState.BLOCKED, Stage.DEPLOY)
    [alert] = store.list_alerts(task_id=task.id)
    assert alert.kind == "no_runner" and alert.delivered_at is None
    assert webhook.received and {d["kind"] for d in webhook.received} == {"no_runner"}
