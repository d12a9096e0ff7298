"""`orch serve` as a real process: refusing a public address without a token, start-up,
SIGTERM, and a task submitted over HTTP taken to done by the worker inside (SPEC 9, 13)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orchestrator.settings import load_settings
from orchestrator.store import open_store
from tests.acceptance.conftest import Serve
from tests.serve_support import free_port, stop

OrchExe = Callable[..., subprocess.CompletedProcess[str]]


def test_serving_on_a_public_address_without_a_token_exits_2_with_one_line(
    orch_exe: OrchExe,
) -> None:
    refused = orch_exe("serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 2
    assert refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert "ORCH_API_TOKEN" in line and "0.0.0.0" in line


@pytest.mark.parametrize("host", ["", "exa mple", "999.1.1.1", "-leading-dash"])
def test_serve_refuses_a_host_that_is_not_a_hostname_or_address_with_one_line(
    orch_exe: OrchExe, host: str
) -> None:
    refused = orch_exe("serve", "--host", host, "--port", str(free_port()))
    assert refused.returncode == 2
    assert refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert "--host" in line


def test_serving_on_a_public_address_with_a_token_starts_and_guards_writes(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_API_TOKEN", "s3cret-token-of-24-chars")
    process, base_url = serve("--host", "0.0.0.0", "--no-worker")
    refused = httpx.post(f"{base_url}/repos", json={"name": "x", "path": "/nowhere"})
    assert refused.status_code == 401 and "error" in refused.json()
    assert stop(process) == 0


def test_serve_answers_health_within_seconds_and_sigterm_stops_it_cleanly(
    serve: Serve,
) -> None:
    process, base_url = serve()
    health = httpx.get(f"{base_url}/health").json()
    assert (health["status"], health["database"]) == ("ok", True)
    started = time.monotonic()
    assert stop(process) == 0
    assert time.monotonic() - started < 10
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/health", timeout=1)
    store = open_store(load_settings())
    [worker] = store.list_workers()  # the worker inside was stopped, not killed with it
    assert worker.stopped_at is not None
    store.close()


def test_a_task_submitted_over_http_reaches_done_with_the_worker_inside(
    db_url: str,
    serve: Serve,
    orch_exe: OrchExe,
    make_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    orch_home: Path,
) -> None:
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "scripted")
    monkeypatch.setenv("ORCH_TEST_RUNNER_ENABLED", "false")
    added = orch_exe(
        "repo", "add", "app", str(make_repo("app")), "--skip-stages", "deploy,post-deploy"
    )
    assert added.returncode == 0, added.stderr
    process, base_url = serve()
    token = (orch_home / "api-token").read_text().strip()  # generated at first start
    created = httpx.post(
        f"{base_url}/tasks",
        json={"repo": "app", "title": "Ship it"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201, created.text
    url = f"{base_url}/tasks/{created.json()['id']}"
    deadline = time.monotonic() + 60
    while (task := httpx.get(url).json())["state"] == "active" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert task["state"] == "done", task
    assert [e["to_stage"] for e in task["events"]][-1] == "done"
    assert stop(process) == 0


def test_the_worker_starts_only_once_the_server_listens(orch_exe: OrchExe) -> None:
    # The port is taken: the server never listens, so the worker inside never starts (a
    # self deploy's monitor would otherwise probe a service that is not there).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = orch_exe("serve", "--no-supervise", "--port", str(taken.getsockname()[1]))
    assert failed.returncode != 0
    store = open_store(load_settings())
    assert store.list_workers() == []  # never registered: it did not start
    store.close()
