"""run_command on real process trees: a timeout kills like a job's kill path, and never hangs."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator.proc import CommandResult, run_command
from orchestrator.proc import run as run_module

# A sleeper that ignores SIGTERM, writes its pid and holds the stdout and stderr it inherited.
SLEEPER = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
"""

# The command: starts the sleeper in a session of its own (it leaves our process group, so a
# kill of the group alone misses it), then waits. On SIGTERM it takes a moment to clean up.
LEADER = r"""
import os, signal, subprocess, sys, time
sleeper, pidfile, cleaned, scrub = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
env = dict(os.environ)
if scrub:  # a descendant that also drops the marker: nothing can find it
    env.pop("ORCH_PROC_MARKER", None)
subprocess.Popen([sys.executable, "-c", sleeper, pidfile], start_new_session=True, env=env)

def on_term(signum, frame):
    time.sleep(0.3)
    open(cleaned, "w").write("cleaned up")
    sys.exit(3)

signal.signal(signal.SIGTERM, on_term)
while not os.path.exists(pidfile):
    time.sleep(0.01)
print("tree ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def strays(tmp_path: Path) -> Iterator[Path]:
    """The sleeper's pid file; whatever it names is killed at the end, fix or no fix."""
    pidfile = tmp_path / "sleeper.pid"
    yield pidfile
    if pidfile.exists():
        with contextlib.suppress(psutil.Error):
            psutil.Process(int(pidfile.read_text())).kill()


def run_in_thread(argv: list[str], limit: float, **kwargs: object) -> CommandResult:
    """run_command, failing the test (instead of hanging it) when it takes over `limit`."""
    results: list[CommandResult] = []
    thread = threading.Thread(
        target=lambda: results.append(run_command(argv, **kwargs)),  # type: ignore[arg-type]
        daemon=True,
    )
    started = time.monotonic()
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"run_command still waiting after {limit} s"
    assert results, "run_command raised"
    assert time.monotonic() - started < limit
    return results[0]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_timeout_terms_waits_the_grace_kills_and_sweeps_a_setsid_child(
    tmp_path: Path, strays: Path
) -> None:
    cleaned = tmp_path / "cleaned"
    argv = [sys.executable, "-c", LEADER, SLEEPER, str(strays), str(cleaned), "0"]
    result = run_in_thread(argv, limit=15.0, timeout=2.0, grace=2.0)
    assert "tree ready" in result.stdout  # what it wrote before the kill is kept
    assert "timed out after 2s and was killed" in result.stderr
    # SIGTERM first, and the grace let it finish cleaning up (its own exit, not SIGKILL).
    assert cleaned.read_text() == "cleaned up"
    assert result.returncode == 3 and not result.ok
    # The sleeper left the group and ignores SIGTERM: the sweep found it by its marker.
    sleeper = int(strays.read_text())
    deadline = time.monotonic() + 2
    while not gone(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(sleeper)


def test_a_descendant_nothing_can_find_does_not_hang_the_command(
    tmp_path: Path, strays: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "DRAIN_AFTER_KILL_S", 0.5)
    argv = [sys.executable, "-c", LEADER, SLEEPER, str(strays), str(tmp_path / "c"), "1"]
    result = run_in_thread(argv, limit=10.0, timeout=1.0, grace=0.5)
    assert "tree ready" in result.stdout and "timed out" in result.stderr
    assert not gone(int(strays.read_text()))  # still holding the pipe, and we returned anyway


def test_a_leader_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    started = time.monotonic()
    result = run_in_thread([sys.executable, "-c", code], limit=10.0, timeout=0.5, grace=0.5)
    assert result.returncode == -signal.SIGKILL
    assert time.monotonic() - started >= 1.0  # the timeout, then the whole grace


def test_a_command_that_finishes_keeps_its_output_exit_code_and_newlines(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write(sys.stdin.read() + 'a\\r\\nb'); sys.exit(4)"
    result = run_command([sys.executable, "-c", code], stdin_text="héllo\n", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (4, "héllo\na\nb", "")
    assert os.environ.get("ORCH_PROC_MARKER") is None  # the marker is the child's, not ours
