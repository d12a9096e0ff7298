"""The orchestrator delivers its own changes: merge, restart on the new code, roll back.

Each test runs `orch serve` (supervised) from a temporary clone of this repository, with the
clone's `src` first on PYTHONPATH, so that a merged change is the code the restarted service
runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.settings import load_settings
from orchestrator.store import open_store
from tests.helpers import git
from tests.serve_support import auth_from

ROOT = Path(__file__).resolve().parents[2]
AGENT = """import os, sys
from pathlib import Path
sys.stdin.read()
role = os.environ["ORCH_ROLE"]
if role == "developer":
    if os.environ["SELF_AGENT_MODE"] == "break":
        target = Path("src/orchestrator/api/app.py")  # imported only when served
        broken = "\\nraise RuntimeError('broken only when served')\\n"
        target.write_text(target.read_text() + broken)
    else:
        target = Path("src/orchestrator/__init__.py")
        target.write_text(target.read_text() + "\\nSELF_DEPLOY_MARK = 'delivered by itself'\\n")
verdicts = {"analyst": "analysis_status: READY", "architect": "design_status: READY",
            "developer": "dev_status: DONE", "reviewer": "review_verdict: APPROVED"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(f"# {role}\\n\\n{verdicts[role]}\\n")
"""


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    path = tmp_path / "orchestrator"
    git(tmp_path, "clone", "--quiet", str(ROOT), str(path))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def service_env(clone: Path, tmp_path: Path, orch_home: Path) -> dict[str, str]:
    agent = tmp_path / "self-agent.py"
    agent.write_text(AGENT)
    return {
        **os.environ,
        "PYTHONPATH": str(clone / "src"),
        "ORCH_HOME": str(orch_home),
        "ORCH_PORT": str(free_port()),
        "ORCH_AGENT_BACKEND": "command",
        "ORCH_AGENT_COMMAND": f"{sys.executable} {agent}",
        "ORCH_MONITOR_WINDOW_S": "1.5",
        "ORCH_MONITOR_INTERVAL_S": "0.3",
        "ORCH_SELF_START_TIMEOUT_S": "30",
        "ORCH_DEFER_BACKOFF_S": "0.2",
        "ORCH_KILL_GRACE_S": "1",
        "SELF_AGENT_MODE": "good",
    }


def orch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def register(service_env: dict[str, str], clone: Path) -> None:
    added = orch(
        service_env,
        "repo",
        "add",
        "self",
        str(clone),
        "--self",
        "--test-target",
        "tests/unit/test_policy.py",
        "--staging-command",
        "python -m orchestrator --help",
    )
    assert added.returncode == 0, added.stderr


class Service:
    """The supervised `orch serve`, in a process group of its own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.base = f"http://127.0.0.1:{env['ORCH_PORT']}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "serve"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def get(self, path: str, deadline_s: float = 60) -> dict[str, Any]:
        """GET a JSON document, waiting through restarts."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                response = httpx.get(self.base + path, timeout=5)
                if response.status_code == 200:
                    document: dict[str, Any] = response.json()
                    return document
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError(f"GET {path} never answered 200")
            time.sleep(0.2)

    def finished(self, task_id: str, deadline_s: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            task = self.get(f"/tasks/{task_id}")
            if task["state"] in ("done", "failed", "blocked", "cancelled"):
                return task
            time.sleep(0.3)
        raise AssertionError(f"task {task_id} did not finish")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def service(service_env: dict[str, str], register: None) -> Iterator[Service]:
    running = Service(service_env)
    yield running
    running.stop()


def submit(service: Service, title: str) -> str:
    response = httpx.post(
        service.base + "/tasks",
        json={"repo": "self", "title": title},
        headers=auth_from(Path(service.env["ORCH_HOME"])),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def artifact(service: Service, task_id: str, name: str) -> str:
    return httpx.get(f"{service.base}/tasks/{task_id}/artifacts/{name}", timeout=10).text


def test_a_change_is_tested_merged_and_the_service_restarts_on_it(
    service: Service, clone: Path
) -> None:
    before = service.get("/health")
    assert before["commit"] == git(clone, "rev-parse", "HEAD").strip()
    task_id = submit(service, "Mark the self deploy")
    task = service.finished(task_id)
    assert task["state"] == "done", task["reason"]
    deploy_log = artifact(service, task_id, "16-deploy-log.md")
    assert "deploy_status: DEPLOYED" in deploy_log
    merged = next(
        line.split()[1] for line in deploy_log.splitlines() if line.startswith("merged_commit:")
    )
    assert f"new_commit: {merged}" in deploy_log and f"old_commit: {before['commit']}" in deploy_log
    assert "monitor_status: HEALTHY" in artifact(service, task_id, "17-monitor-report.md")
    after = service.get("/health")
    assert after["commit"] == merged and after["started_at"] != before["started_at"]
    assert "SELF_DEPLOY_MARK" in (clone / "src" / "orchestrator" / "__init__.py").read_text()
    producers = {e["to_stage"]: e["producer"] for e in task["events"]}
    assert producers["deploy-staging"] == "test-runner"
    assert producers["deploy"] == "staging-runner"


def test_a_change_that_breaks_start_up_is_reverted_and_the_task_fails(
    service_env: dict[str, str], register: None, clone: Path
) -> None:
    service_env["SELF_AGENT_MODE"] = "break"
    service = Service(service_env)
    try:
        before = service.get("/health")
        task_id = submit(service, "Break the service")
        task = service.finished(task_id)
        assert task["state"] == "failed", task
        report = artifact(service, task_id, "17-monitor-report.md")
        assert "monitor_status: UNHEALTHY" in report and "before answering /health" in report
        log = git(clone, "log", "--format=%s", "-3")
        assert log.splitlines()[0].startswith('Revert "Merge orch/')
        assert (
            "broken only when served"
            not in (clone / "src" / "orchestrator" / "api" / "app.py").read_text()
        )
        after = service.get("/health")  # back up, on the old code
        assert after["commit"] == git(clone, "rev-parse", "HEAD").strip()
        assert after["started_at"] != before["started_at"]
        alerts = httpx.get(service.base + "/alerts", timeout=10).json()
        assert any(a["kind"] == "self_deploy_rolled_back" for a in alerts)
    finally:
        service.stop()


# Holds the service's move of main at one point of git's ref transaction ("prepared": the
# ref is locked but not moved; "committed": moved), so the test kills it exactly there.
HOLD_HOOK = """#!/bin/sh
[ "$1" = "$HOLD_STATE" ] || exit 0
grep -q " refs/heads/main$" || exit 0
echo $$ > "$HOLD_MARK"
exec sleep 300
"""


@pytest.mark.parametrize("hold", ["prepared", "committed"])
def test_a_kill_around_the_branch_move_still_deploys_exactly_once_from_the_old_commit(
    hold: str, service_env: dict[str, str], register: None, clone: Path, tmp_path: Path
) -> None:
    mark = tmp_path / "held"
    hook = clone / ".git" / "hooks" / "reference-transaction"
    hook.write_text(HOLD_HOOK)
    hook.chmod(0o755)
    env = {**service_env, "HOLD_STATE": hold, "HOLD_MARK": str(mark)}
    base = git(clone, "rev-parse", "main").strip()
    store = open_store(load_settings(home=Path(env["ORCH_HOME"])))
    service = Service(env)
    try:
        service.get("/health")
        task_id = submit(service, "Survive a crash")
        deadline = time.monotonic() + 180
        while not (mark.exists() and mark.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert mark.exists(), "the deploy never reached the branch move"
        # Where it is killed: the pending record (with the old commit) is already written,
        # and the branch has not moved yet (prepared) or has just moved (committed).
        [pending] = store.self_deploys()
        assert (pending.state, pending.old_commit) == ("pending", base)
        moved = git(clone, "rev-parse", "main").strip()
        assert moved == (base if hold == "prepared" else pending.merged_commit)
        service.kill()  # the supervisor and its child, at once
        os.kill(int(mark.read_text()), signal.SIGKILL)  # let git abort or finish its move
        hook.unlink()
        lock = clone / ".git" / "refs" / "heads" / "main.lock"
        while lock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        service = Service(env)
        task = service.finished(task_id)
        assert task["state"] == "done", task["reason"]
        deploys = store.self_deploys()
        expected = ["abandoned"] if hold == "prepared" else []
        assert [d.state for d in deploys[:-1]] == expected
        assert deploys[-1].state in ("completed", "healthy")
        assert deploys[-1].old_commit == base != deploys[-1].merged_commit  # revertible
        assert git(clone, "rev-parse", "main").strip() == deploys[-1].merged_commit
        assert len([e for e in task["events"] if e["from_stage"] == "deploy"]) == 1
        versions = httpx.get(f"{service.base}/tasks/{task_id}/artifacts").json()
        assert [v["name"] for v in versions].count("16-deploy-log.md") == 1
    finally:
        service.stop()
        store.close()
