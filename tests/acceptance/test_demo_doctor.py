"""`orch demo` on a machine with nothing configured, and `orch doctor`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.store.migrate import HEAD_REVISION
from orchestrator.transport.call import COMMAND_VERSION_TIMEOUT_S
from tests.conftest import ORCH_EXE

IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip


def bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A fresh machine: an empty HOME, no ORCH_* and no GIT_* variables."""
    home = tmp_path / "empty-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "GIT_"))}
    return {**env, "HOME": str(home), **extra}


def orch(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORCH_EXE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_demo_runs_the_whole_pipeline_to_done_on_a_fresh_machine(tmp_path: Path) -> None:
    result = orch(bare_env(tmp_path), "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # The test-runner catches the broken round with real pytest, and the task goes back.
    assert "FAIL" in out and "test-runner (code)" in out and "-> development" in out
    assert "test_total_value_counts_quantity_times_price" in out
    # ... then through staging, the merge and the health watch to done.
    for producer in ("staging-runner (code)", "deploy-finalizer (code)", "post-deploy-monitor"):
        assert producer in out
    assert "ended done after 2 round(s)" in out
    assert "5 by code" in out and "by agents (scripted)" in out
    assert "merged" in out
    assert not (tmp_path / "empty-home" / ".orch").exists()  # the demo keeps to its folder


def test_demo_dir_keeps_repo_database_and_artifacts(tmp_path: Path) -> None:
    folder = tmp_path / "kept"
    result = orch(bare_env(tmp_path), "demo", "--dir", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "home" / "orch.db").is_file()
    [task] = list((folder / "home" / "tasks").iterdir())
    assert (task / "13-test-report.md").is_file() and (task / "17-monitor-report.md").is_file()
    merged = (folder / "inventory" / "inventory" / "core.py").read_text()
    assert "quantity * item.unit_price" in merged  # the fix is on main, in the working copy
    assert (folder / "deployed" / "inventory" / "core.py").read_text() == merged
    assert (folder / "deployed" / "deploy.log").read_text().startswith("deployed inventory at")


@pytest.mark.parametrize("user_home", [False, True], ids=["bare", "with-ORCH_HOME"])
def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path, user_home: bool) -> None:
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    extra = {"ORCH_HOME": str(tmp_path / "users-home")} if user_home else {}
    result = orch(bare_env(tmp_path, **extra), "demo", "--dir", str(folder), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "not empty" in result.stderr
    assert [p.name for p in folder.iterdir()] == ["mine.txt"]


def test_doctor_reports_every_check_and_passes_when_ready(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="scripted")
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    for name in (
        "python",
        "git",
        "pytest",
        "settings",
        "ORCH_HOME",
        "database",
        "agent",
        "API",
        "test-runner",
        "post-deploy-monitor",
    ):
        assert name in result.stdout
    assert "ready" in result.stdout.splitlines()[-1]


def test_doctor_fails_on_an_unwritable_home(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="scripted", ORCH_HOME="/proc/orch-home")
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "ORCH_HOME" in line)
    assert line.startswith("✘") and "not writable" in line
    assert "not ready: ORCH_HOME" in result.stdout


def test_doctor_fails_when_the_agent_cli_is_missing(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="codex", PATH="/usr/bin:/bin")
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 1 and "codex is not on PATH" in result.stdout


def test_doctor_reports_a_bad_setting_by_name(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ORCH_MAX_PARALLEL_JOBS="lots")
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 1 and "ORCH_MAX_PARALLEL_JOBS" in result.stdout


def test_doctor_fails_on_a_database_at_a_revision_it_does_not_know(tmp_path: Path) -> None:
    home = tmp_path / "orch-home"
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="scripted", ORCH_HOME=str(home))
    assert orch(env, "db", "upgrade", cwd=tmp_path).returncode == 0
    # What a newer orchestrator leaves behind after migrating the database past our head.
    with sqlite3.connect(home / "orch.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0999'")
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    line = next(line for line in result.stdout.splitlines() if " database " in line)
    assert line.startswith("✘") and "revision 0999" in line and "does not know" in line
    assert f"its newest is {HEAD_REVISION}" in line and "on first use" not in line
    assert "not ready: database" in result.stdout


AGENT_STAND_IN = """import sys, time
if sys.argv[1:] == ["--version"]:
    if "{mode}" == "waits":
        time.sleep(60)  # like an agent that reads its prompt from stdin whatever it is told
    if "{mode}" == "fails":
        sys.exit(3)
    print("my-agent 1.2.3")
"""


@pytest.mark.parametrize(
    ("mode", "mark", "shown"),
    [
        ("answers", "✔", "my-agent 1.2.3"),
        (
            "waits",
            "!",  # a command agent need not know --version: a warning, not a failure
            f"no version: it did not answer --version within {COMMAND_VERSION_TIMEOUT_S:g}s",
        ),
        ("fails", "!", "no version: --version exited 3"),
    ],
)
def test_doctor_says_what_it_runs_for_the_command_agents_version(
    tmp_path: Path, mode: str, mark: str, shown: str
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    agent = folder / "my-agent"
    agent.write_text(f"#!{sys.executable}\n" + AGENT_STAND_IN.replace("{mode}", mode))
    agent.chmod(0o755)
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="command", ORCH_AGENT_COMMAND="my-agent {role}")
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    result = orch(env, "doctor", cwd=tmp_path)
    line = next(line for line in result.stdout.splitlines() if "agent (command)" in line)
    assert line.startswith(mark) and line.endswith(f"ran `{agent} --version`: {shown}"), line


def test_doctor_shows_red_when_the_agent_cli_fails_its_version(tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    broken = folder / "claude"
    broken.write_text("#!/bin/sh\necho 'claude: cannot load its config' >&2\nexit 1\n")
    broken.chmod(0o755)
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="claude")
    env["PATH"] = f"{folder}{os.pathsep}{env['PATH']}"
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    line = next(line for line in result.stdout.splitlines() if "agent (claude)" in line)
    assert line.startswith("✘") and f"ran `{broken} --version`" in line, line


def test_doctor_fails_on_a_database_file_with_a_damaged_page(tmp_path: Path) -> None:
    home = tmp_path / "orch-home"
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="scripted", ORCH_HOME=str(home))
    assert orch(env, "db", "upgrade", cwd=tmp_path).returncode == 0
    database = home / "orch.db"
    with sqlite3.connect(database) as db:  # pages enough that one can break alone
        db.execute("CREATE TABLE filler (x TEXT)")
        db.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 200)
    data = bytearray(database.read_bytes())
    page = 4096
    data[page * 6 : page * 6 + 64] = b"\xff" * 64  # garble one page in the middle
    database.write_bytes(bytes(data))
    result = orch(env, "doctor", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    line = next(line for line in result.stdout.splitlines() if " database " in line)
    assert line.startswith("✘"), line


def test_doctor_checks_each_registered_repo(tmp_path: Path) -> None:
    env = bare_env(tmp_path, ORCH_AGENT_BACKEND="scripted", ORCH_HOME=str(tmp_path / "home"))
    repo = tmp_path / "shop"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "test_a.py").write_text("def test_one():\n    pass\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "start"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**env, **IDENTITY})
    added = orch(
        env, "repo", "add", "shop", str(repo),
        "--staging-command", "no-such-staging-tool --all",
        "--health-url", "http://127.0.0.1:9/health",
        cwd=tmp_path,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    result = orch(env, "doctor", cwd=tmp_path)
    out = result.stdout
    assert "shop:" in out, out
    assert "✔ shop: tests" in out and "1 test collected" in out
    assert "! shop: staging" in out and "no-such-staging-tool is not on PATH" in out
    assert "✔ shop: deploy" in out and "the merge is the deploy" in out
    assert "! shop: health URL" in out and "no answer" in out
    assert result.returncode == 0  # a repo's trouble is a warning, not "not ready"
