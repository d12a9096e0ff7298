"""A worker that outlives a SQLite lock held past its busy timeout (ORCH_SQLITE_BUSY_TIMEOUT_S):
another process holds the database's write lock for longer than any writer waits, and
`orch worker --drain` must neither exit nor lose a task: it waits the lock out, and ends
every task done."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ORCH_EXE
from tests.helpers import add_task, show, sqlite_only

OrchExe = Callable[..., subprocess.CompletedProcess[str]]
BUSY_TIMEOUT_S = 3  # ORCH_SQLITE_BUSY_TIMEOUT_S: 30 by default; shorter, the test is too
HELD_S = BUSY_TIMEOUT_S + 5


def test_a_write_lock_held_past_the_busy_timeout_is_waited_out(
    orch_exe: OrchExe,
    make_repo: Callable[..., Path],
    fake_bin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = sqlite_only(tmp_path, monkeypatch)
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "command")
    monkeypatch.setenv("ORCH_AGENT_COMMAND", "fake-agent {role}")
    monkeypatch.setenv("ORCH_TEST_RUNNER_ENABLED", "false")
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "0.3")
    monkeypatch.setenv("ORCH_SQLITE_BUSY_TIMEOUT_S", str(BUSY_TIMEOUT_S))
    # A job whose end could not be recorded is re-queued when its lease runs out: short.
    monkeypatch.setenv("ORCH_LEASE_S", "5")
    added = orch_exe("repo", "add", "app", str(make_repo("app")), "--skip-stages", "deploy")
    assert added.returncode == 0, added.stderr
    tasks = [add_task(orch_exe, "app", f"Task {n}") for n in range(2)]
    worker = subprocess.Popen([ORCH_EXE, "worker", "--drain"], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # under way
        lock = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        held_until = time.monotonic() + HELD_S
        while time.monotonic() < held_until:
            assert worker.poll() is None, "the worker exited while the lock was held"
            time.sleep(0.5)
        lock.execute("ROLLBACK")
        lock.close()
        _, err = worker.communicate(timeout=180)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    # The outage is logged once when it starts and once when it ends, not at every retry.
    assert err.count("database unreachable, retrying") == 1, err
    assert err.count("database back after") == 1, err
    for task_id in tasks:
        task = show(orch_exe, task_id)
        assert task["state"] == "done", task
        moves = [(e["from_stage"], e["to_stage"]) for e in task["events"]]
        assert len(moves) == len(set(moves)), moves  # no move made twice
