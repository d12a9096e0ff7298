"""GET /status, /queue and /metrics after real work: their documented shapes (SPEC 9, 15)."""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.scheduler import Worker
from orchestrator.store import RepoSpec, Store
from tests.api_support import (
    RUNNER_KEYS,
    Serve,
    add_app_repo,
    create,
    drain,
    server_factory,
    settings_for,
)
from tests.helpers import git

CLAUDE_COST_USD = 0.0421  # what the fake claude reports for each call (tests/fakes/claude.py)


@pytest.fixture
def serve(store: Store, db_url: str, orch_home: Path) -> Iterator[Serve]:
    with server_factory(store, db_url, orch_home) as start:
        yield start


@pytest.fixture
def repo_path(make_repo: Callable[..., Path], store: Store) -> Path:
    return add_app_repo(make_repo, store)


def hyphenated_keys(document: Any, where: str = "") -> list[str]:
    """Every JSON key (at any depth) spelled with a hyphen."""
    if isinstance(document, list):
        return [k for n, item in enumerate(document) for k in hyphenated_keys(item, where)]
    if not isinstance(document, dict):
        return []
    found = [f"{where}/{key}" for key in document if "-" in key]
    for key, value in document.items():
        found += hyphenated_keys(value, f"{where}/{key}")
    return found


def test_status_counts_tasks_and_reports_determinization_after_a_run(
    fake_bin: Path, repo_path: Path, serve: Serve, store: Store, db_url: str, orch_home: Path
) -> None:
    api = serve()
    create(api)
    create(api)
    drain(store, db_url, orch_home)
    status = api.get("/status").json()
    assert {"tasks", "jobs", "blocked", "alerts", "workers", "determinization"} <= set(status)
    assert status["tasks"]["by_state"] == {"done": 2}
    assert status["jobs"] == {"running": 0, "queued": 0, "deferred": 0}
    assert status["alerts"]["open"] == 0 and status["blocked"] == []
    figures = status["determinization"]
    # Per task: analyst, architect, developer and reviewer gave verdicts; the test-runner gave
    # the testing verdict instead of the tester, and the staging-runner SKIPPED staging (no
    # staging command) instead of the deployer.
    assert figures["verdicts_llm"] == 8 and figures["verdicts_deterministic"] == 4
    assert figures["llm_calls_avoided"] == 4
    # JSON keys use underscores (SPEC 15); the names as values keep their hyphens.
    assert figures["verdicts_by_producer"] == {
        "analyst": 2,
        "architect": 2,
        "developer": 2,
        "reviewer": 2,
        "test_runner": 2,
        "staging_runner": 2,
    }
    assert figures["by_stage"]["deploy_staging"]["verdicts_by_code"] == 2
    assert figures["by_stage"]["testing"]["verdicts_by_code"] == 2
    assert hyphenated_keys(status) == []
    assert figures["agent_calls"] == 8
    assert isinstance(figures["tokens_in"], int) and isinstance(figures["tokens_out"], int)
    assert isinstance(figures["cost_usd"], int | float)


def test_queue_lists_jobs_serial_gates_and_one_block_per_runner(
    fake_bin: Path, repo_path: Path, serve: Serve, store: Store, db_url: str, orch_home: Path
) -> None:
    api = serve(test_runner_timeout_s=12.5, staging_runner_enabled=False)
    done = create(api, "First")
    drain(store, db_url, orch_home)
    waiting = create(api, "Second")
    queue = api.get("/queue").json()
    keys = {"running", "queued", "deferred", "serial_gate", "waiting_for_person", *RUNNER_KEYS}
    assert set(queue) == keys
    assert queue["waiting_for_person"] == []  # (tests/acceptance/test_repo_pipelines.py)
    [queued] = queue["queued"]
    assert (queued["task_id"], queued["repo"], queued["title"]) == (waiting["id"], "app", "Second")
    assert (queued["stage"], queued["status"]) == ("analysis", "queued")
    assert queue["running"] == [] and queue["deferred"] == []
    assert queue["serial_gate"] == {"app": {"holder": None, "waiting": [], "tested": {}}}
    for key in RUNNER_KEYS:
        block = queue[key]
        assert set(block) >= {"enabled", "repos", "timeout_s", "infra_budget", "running"}
        assert set(block) >= {"deferred", "last_outcomes"}
        assert block["repos"] == ["*"] and block["infra_budget"] == 3
    assert queue["test_runner"]["timeout_s"] == 12.5
    assert (queue["test_runner"]["enabled"], queue["staging_runner"]["enabled"]) == (True, False)
    [outcome] = queue["test_runner"]["last_outcomes"]
    assert (outcome["task_id"], outcome["verdict"]) == (done["id"], "PASS")
    assert queue["deploy_finalizer"]["last_outcomes"] == []


@contextmanager
def worker_running(store: Store, db_url: str, home: Path, **overrides: object) -> Iterator[None]:
    """A real worker in a thread, stopped (its running jobs killed) at the end."""
    worker = Worker(store, settings_for(db_url, home, **overrides))
    thread = threading.Thread(target=worker.run, name="worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not stop"


def wait_for(api: httpx.Client, path: str, ready: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        document = api.get(path).json()
        if ready(document):
            return document
        time.sleep(0.1)
    raise AssertionError(f"{path} never got there; last: {document}")


def held_with_two_waiting_and_one_deferred(queue: dict) -> bool:
    gate = queue["serial_gate"]["app"]
    return gate["holder"] is not None and len(gate["waiting"]) == 2 and len(queue["deferred"]) == 1


def test_queue_shows_the_gate_holder_its_waiters_and_running_and_deferred_runner_jobs(
    fake_bin: Path,
    make_repo: Callable[..., Path],
    serve: Serve,
    store: Store,
    db_url: str,
    orch_home: Path,
    tmp_path: Path,
) -> None:
    # app's staging suite runs until released: the first task to reach deploy-staging holds
    # the repo's serial gate meanwhile, and the next ones wait for it.
    release = tmp_path / "release"
    wait = f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.05)"
    app = add_app_repo(make_repo, store, staging_command=shlex.join([sys.executable, "-c", wait]))
    app_main = git(app, "rev-parse", "main").strip()
    # lib's test command does not exist: the test-runner cannot run, and defers the job.
    lib = make_repo("lib")
    store.add_repo("lib", RepoSpec(path=str(lib), default_branch="main", test_command="no-such-x"))
    slow = {"defer_backoff_s": 300.0, "defer_backoff_max_s": 600.0}
    api = serve(**slow)
    gated = [create(api, f"Gated {n}")["id"] for n in range(3)]
    deferred_id = api.post("/tasks", json={"repo": "lib", "title": "Deferred"}).json()["id"]

    with worker_running(store, db_url, orch_home, **slow):
        # Two may wait with nobody holding the gate yet, while an older one still tests ahead
        # of them: the steady state has a holder.
        queue = wait_for(api, "/queue", held_with_two_waiting_and_one_deferred)
        status = api.get("/status").json()
        release.touch()
    asked_at = datetime.now(UTC)

    gate = queue["serial_gate"]["app"]
    assert gate["holder"] in gated
    assert sorted([gate["holder"], *gate["waiting"]]) == sorted(gated)
    assert queue["serial_gate"]["lib"] == {"holder": None, "waiting": [], "tested": {}}
    # The merge queue: every one of them waits with the base its merge was tested on.
    assert sorted(gate["tested"]) == sorted(gated)
    assert {t["base_commit"] for t in gate["tested"].values()} == {app_main}
    [running] = queue["running"]
    assert (running["task_id"], running["repo"], running["stage"]) == (
        gate["holder"],
        "app",
        "deploy-staging",
    )
    assert running["status"] == "running"  # its producer is written when it ends
    assert running["worker_id"] and running["lease_expires_at"] and running["started_at"]
    assert [j["id"] for j in queue["staging_runner"]["running"]] == [running["id"]]
    assert queue["staging_runner"]["deferred"] == []
    assert sorted(j["task_id"] for j in queue["queued"]) == sorted(gate["waiting"])
    assert {j["stage"] for j in queue["queued"]} == {"deploy-staging"}

    [deferred] = queue["deferred"]
    assert (deferred["task_id"], deferred["repo"], deferred["stage"]) == (
        deferred_id,
        "lib",
        "testing",
    )
    assert (deferred["status"], deferred["producer"]) == ("deferred", "test-runner")
    assert (deferred["infra_failures"], deferred["error_kind"]) == (1, "tool_error")
    retry_at = datetime.fromisoformat(deferred["not_before"])
    assert asked_at + timedelta(seconds=200) < retry_at < asked_at + timedelta(seconds=301)
    [runner_deferred] = queue["test_runner"]["deferred"]
    assert (runner_deferred["id"], runner_deferred["not_before"]) == (
        deferred["id"],
        deferred["not_before"],
    )
    assert queue["test_runner"]["running"] == []

    assert status["jobs"] == {"running": 1, "queued": 2, "deferred": 1}
    assert status["tasks"]["by_stage"] == {"deploy_staging": 3, "testing": 1}
    assert hyphenated_keys(status) == []


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus page: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_tasks_transitions_jobs_durations_tokens_and_cost_after_a_run(
    fake_bin: Path, repo_path: Path, serve: Serve, store: Store, db_url: str, orch_home: Path
) -> None:
    api = serve()
    create(api)
    before = api.get("/metrics")
    assert before.headers["content-type"].startswith("text/plain")
    assert "# TYPE orch_tasks gauge" in before.text
    assert samples(before.text)[("orch_jobs", (("status", "queued"),))] == 1
    assert samples(before.text)[("orch_active_tasks", (("stage", "analysis"),))] == 1
    drain(store, db_url, orch_home, agent_backend="claude")

    metrics = samples(api.get("/metrics").text)
    assert metrics[("orch_tasks", (("state", "done"),))] == 1
    llm = ("analyst", "architect", "developer", "reviewer")
    code = ("test-runner", "staging-runner")  # staging SKIPPED: the repo has no command
    for producer in (*llm, *code):
        assert metrics[("orch_transitions_total", (("producer", producer),))] == 1, producer
        seconds = metrics[("orch_job_duration_seconds_total", (("producer", producer),))]
        assert seconds > 0 or producer == "staging-runner", producer  # SKIPPED runs nothing
    # Finished jobs by producer and outcome: the runner's and the agents' alike.
    finished = {k[1]: v for k, v in metrics.items() if k[0] == "orch_jobs_finished_total"}
    assert finished == {(("outcome", "verdict"), ("producer", p)): 1 for p in (*llm, *code)}
    assert metrics[("orch_llm_calls_avoided_total", ())] == 2
    figures = api.get("/status").json()["determinization"]
    assert metrics[("orch_agent_tokens_in_total", ())] == figures["tokens_in"] > 0
    assert metrics[("orch_agent_tokens_out_total", ())] == figures["tokens_out"] > 0
    cost = metrics[("orch_agent_cost_usd_total", ())]
    assert cost == pytest.approx(len(llm) * CLAUDE_COST_USD) == figures["cost_usd"]
    assert metrics[("orch_jobs", (("status", "queued"),))] == 0
