"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from orchestrator.settings import Settings, load_settings
from orchestrator.store import Alert, Job, Store, tallies
from orchestrator.store.schema import task_tallies, usage_tallies, verdict_tallies
from orchestrator.store.tallies import summed

# A service that starts and never answers /health (for the supervisor's tests).
SILENT_SERVICE = [sys.executable, "-c", "import time; time.sleep(120)"]


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` for a test and return its stdout; fails the test when git fails."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def entries(folder: Path) -> list[Path]:
    """What a folder holds; empty when it does not exist (or is not a folder)."""
    return sorted(folder.iterdir()) if folder.is_dir() else []


def fake_agent_settings(db_url: str, home: Path, **values: object) -> Settings:
    """Settings whose agents are the fake `fake-agent` executable (tests/fakes), through the
    real command backend; `values` add to or replace these."""
    base: dict[str, object] = {
        "db_url": db_url,
        "home": home,
        "agent_backend": "command",
        "agent_command": "fake-agent {role}",
    }
    return load_settings(**{**base, **values})


def running_job(store: Store, timeout: float = 30) -> Job:
    """The first running job whose agent has started (its pid is recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = [j for j in store.running_jobs() if j.pid]
        if held:
            return held[0]
        time.sleep(0.02)
    raise AssertionError("no job started its agent")


OrchExe = Callable[..., subprocess.CompletedProcess[str]]


def command_agent(folder: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> Path:
    """A command agent whose program is the Python `source`, made the orchestrator's agent
    (the real spawn path: an executable file run through ORCH_AGENT_COMMAND)."""
    script = folder / "bin" / "agent"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!{sys.executable}\n{source}")
    script.chmod(0o755)
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "command")
    monkeypatch.setenv("ORCH_AGENT_COMMAND", str(script))
    return script


def add_task(orch_exe: OrchExe, repo: str, title: str) -> str:
    """`orch task add REPO TITLE --json`: the new task's id."""
    created = orch_exe("task", "add", repo, title, "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["id"])


def drain(orch_exe: OrchExe) -> None:
    """`orch worker --drain`, which must end with exit 0."""
    drained = orch_exe("worker", "--drain")
    assert drained.returncode == 0, drained.stderr


def show(orch_exe: OrchExe, task_id: str) -> dict[str, Any]:
    """`orch task show ID --json`."""
    shown = orch_exe("task", "show", task_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


def unique_marker() -> str:
    """A process marker no other run of the suite uses: the leftover sweep kills by marker,
    so a fixed one would let two concurrent runs kill each other's processes."""
    return f"orch-test-{uuid.uuid4().hex}"


def sqlite_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite URL for tests of code that reads its records and never queries the database
    (a `db_url` fixture of their own runs them once, not once per backend)."""
    url = f"sqlite:///{tmp_path / 'db' / 'orch.db'}"
    monkeypatch.setenv("ORCH_DB_URL", url)
    return url


def raise_alert(store: Store, kind: str, message: str, task_id: str | None = None) -> Alert:
    """An alert for a test of the alert views (the product raises alerts only inside the
    transaction of the move that causes them)."""
    with store._write() as conn:
        return store._insert_alert(conn, kind, message, task_id)


def one_line_refusal(result: subprocess.CompletedProcess[str], words: str) -> None:
    """The command refused with a non-zero exit and one line that says `words`."""
    assert result.returncode != 0
    stderr = result.stderr.strip()
    assert "\n" not in stderr and words in stderr, stderr


def stored_totals(engine: Engine, recount: bool = False) -> dict[str, Any]:
    """The totals as stored, or (`recount`) as a fresh count of the rows would make them."""
    with engine.connect() as conn, conn.begin() as transaction:
        if recount:
            tallies.recount(conn)
        states = {  # a state with no task left may keep a total of 0
            row.state: row.tasks for row in conn.execute(select(summed(task_tallies))) if row.tasks
        }
        verdicts = {
            (row.producer, row.stage): row.verdicts
            for row in conn.execute(select(summed(verdict_tallies)))
        }
        usage = {
            (row.stage, row.role): (
                row.calls,
                row.tokens_in,
                row.tokens_out,
                round(row.cost_usd, 6),
                row.measured_calls,
                row.measured_tokens,
            )
            for row in conn.execute(select(summed(usage_tallies)))
        }
        transaction.rollback()
    return {"tasks": states, "verdicts": verdicts, "usage": usage}


def tallies_agree(store: Store) -> bool:
    """Whether the running totals equal a fresh count of the rows they total."""
    return stored_totals(store.engine) == stored_totals(store.engine, recount=True)
