"""The post-deploy-monitor through the real worker, on a normal (not self-hosted) repo.

The task goes through every stage with the contract-following fake agent, a real merge by the
deploy-finalizer, and a health URL served by a local HTTP server. SPEC sections 4 and 8: an
UNHEALTHY watch fails the task with an alert; a watch that cannot run at all is a tool error
(deferred, then FAILED as infra with an alert), never a HEALTHY.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.runners.base import RunnerOutcome, RunnerRequest
from orchestrator.runners.monitor import PostDeployMonitor
from orchestrator.scheduler import Worker
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store, Task
from tests.helpers import git

BUDGET = 2  # post_deploy_monitor_infra_retries
REPORT = "17-monitor-report.md"


@dataclass
class Health:
    """A local /health endpoint answering a sequence of statuses (the last one repeats)."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    hits: int = 0

    def next_status(self) -> int:
        self.hits += 1
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def health(monkeypatch: pytest.MonkeyPatch) -> Iterator[Health]:
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(key, raising=False)
    endpoint = Health()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                status = endpoint.next_status()
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_task(
    store: Store, home: Path, db_url: str, make_repo: Callable[..., Path], health_url: str
) -> tuple[Task, Path]:
    """A task on a repo with a health URL, drained through every stage but deploy-staging."""
    path = make_repo("app")
    spec = RepoSpec(
        path=str(path),
        default_branch="main",
        test_command=shlex.join(["python", "-c", "pass"]),
        health_url=health_url,
        skip_stages=frozenset({Stage.DEPLOY_STAGING}),
    )
    store.add_repo("app", spec)
    task = submit_task(store, home, "app", "Add a feature", "make it so")
    settings = load_settings(
        db_url=db_url,
        home=home,
        agent_backend="command",
        agent_command="fake-agent {role}",
        defer_backoff_s=0.05,
        defer_backoff_max_s=0.1,
        post_deploy_monitor_infra_retries=BUDGET,
        monitor_window_s=0.4,
        monitor_interval_s=0.2,
    )
    assert Worker(store, settings, drain=True).run() == 0
    return store.get_task(task.id), path


def post_deploy_moves(store: Store, task: Task) -> list[tuple[str, str | None, str]]:
    return [
        (e.to_stage, e.verdict, e.producer)
        for e in store.events(task.id)
        if e.from_stage == Stage.POST_DEPLOY
    ]


def test_an_unhealthy_watch_fails_the_task_with_the_reason_and_an_alert(
    fake_bin: Path,
    health: Health,
    make_repo: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
) -> None:
    health.statuses = [200, 503, 200]
    task, path = run_task(store, orch_home, db_url, make_repo, health.url)

    assert (task.state, task.stage) == (TaskState.FAILED, Stage.POST_DEPLOY)
    assert "monitor_status: UNHEALTHY" in (task.reason or "")
    report = store.get_artifact(task.id, REPORT).text
    for line in ("monitor_status: UNHEALTHY", "failure_kind: unhealthy"):
        assert line in report.splitlines()
    assert "| 503 |" in report and f"`{health.url}`" in report
    assert post_deploy_moves(store, task) == [("failed", "UNHEALTHY", "post-deploy-monitor")]
    jobs = [j for j in store.task_jobs(task.id) if j.stage is Stage.POST_DEPLOY]
    assert [(j.infra_failures, j.attempt) for j in jobs] == [(0, 1)]  # a verdict, not deferred
    [alert] = store.list_alerts(task_id=task.id)
    assert alert.kind == "task_failed" and "monitor_status: UNHEALTHY" in alert.message
    assert git(path, "log", "-1", "--format=%s", "main").startswith("Merge orch/")  # deployed


def broken_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # A CA bundle setting that points nowhere: the monitor cannot open an HTTP client at all.
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent/ca-bundle.pem")


def monitor_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: PostDeployMonitor, request: RunnerRequest) -> RunnerOutcome:
        raise RuntimeError("the monitor exploded")

    monkeypatch.setattr(PostDeployMonitor, "run", explode)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        pytest.param(broken_ca_bundle, "cannot open an HTTP client", id="no-http-client"),
        pytest.param(monitor_raises, "raised RuntimeError: the monitor exploded", id="raises"),
    ],
)
def test_a_watch_that_cannot_run_is_deferred_then_fails_the_task_as_infra(
    fault: Callable[[pytest.MonkeyPatch], None],
    reason: str,
    fake_bin: Path,
    health: Health,
    make_repo: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fault(monkeypatch)
    task, _ = run_task(store, orch_home, db_url, make_repo, health.url)

    jobs = [j for j in store.task_jobs(task.id) if j.stage is Stage.POST_DEPLOY]
    assert [(j.infra_failures, j.attempt, j.producer) for j in jobs] == [
        (BUDGET, BUDGET + 1, "post-deploy-monitor")
    ]
    assert health.hits == 0  # no probe ever ran, so nothing could read as HEALTHY
    report = store.get_artifact(task.id, REPORT).text
    for line in ("monitor_status: UNHEALTHY", "failure_kind: infra"):
        assert line in report.splitlines()
    assert f"Could not watch `{health.url}`: no probe ran." in report
    assert f"could not run in {BUDGET + 1} attempts" in report and reason in report
    assert post_deploy_moves(store, task) == [("failed", "UNHEALTHY", "post-deploy-monitor")]
    assert (task.state, task.stage) == (TaskState.FAILED, Stage.POST_DEPLOY)
    alerts = store.list_alerts(task_id=task.id)
    assert sorted(a.kind for a in alerts) == ["infra", "task_failed"]
    [infra] = [a for a in alerts if a.kind == "infra"]
    assert "post-deploy-monitor could not run" in infra.message and reason in infra.message
