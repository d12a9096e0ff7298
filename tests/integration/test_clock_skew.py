"""Two clocks: the database's, which every lease and deferral is judged by, and each
machine's own, which may run ahead or behind. A worker on a machine whose clock is wrong must
still retry on time (real PostgreSQL, a real worker and agent processes)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import TaskState
from orchestrator.scheduler import Worker
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store
from orchestrator.store import base as base_module
from tests.integration.test_worker import LLM_ONLY, settings_for


@pytest.fixture
def clock_an_hour_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's clock runs an hour ahead of the database's: every orchestrator module
    that reads the wall clock through `utcnow` reads the skewed one."""
    real = base_module.utcnow
    for name, module in list(sys.modules.items()):
        if name.startswith("orchestrator") and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", lambda: real() + timedelta(hours=1))


@pytest.mark.pg
def test_a_deferred_job_comes_due_by_the_databases_clock_not_the_workers(
    fake_bin: Path,
    make_repo: Callable[..., Path],
    pg_url: str,
    orch_home: Path,
    clock_an_hour_ahead: None,
) -> None:
    store = open_store(load_settings(db_url=pg_url))
    path = make_repo("app")
    store.add_repo("app", RepoSpec(path=str(path), default_branch="main", skip_stages=LLM_ONLY))
    task = submit_task(store, orch_home, "app", "Task", "do it")
    # The agent writes no artifact: each attempt is deferred by the back-off, then retried.
    worker = Worker(store, settings_for(pg_url, orch_home, agent_command="true"), drain=True)
    running = threading.Thread(target=worker.run, daemon=True)
    running.start()
    running.join(timeout=30)
    stuck = running.is_alive()
    if stuck:
        worker.stop()
        running.join(timeout=30)
    try:
        assert not stuck, f"the retry waits an hour: {store.task_jobs(task.id)}"
        blocked = store.get_task(task.id)
        assert blocked.state is TaskState.BLOCKED and "no_artifact" in (blocked.reason or "")
    finally:
        store.close()
