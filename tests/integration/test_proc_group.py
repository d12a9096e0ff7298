"""proc_group on real subprocesses: output capture, stdin, timeouts, cancels and tree kills."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from orchestrator.errors import SpawnFailed
from orchestrator.proc import CancelToken, ProcResult, Started, process_alive, run_group
from orchestrator.proc.group import HEAD_BYTES, LOG_MAX_BYTES, TAIL_BYTES, terminate_group
from orchestrator.proc.sweep import MARKER_VAR
from tests.helpers import unique_marker

# 30 processes as a binary tree (process i forks 2i+1 and 2i+2). Odd ones ignore SIGTERM;
# one of them also escapes into a session of its own, taking its two children with it.
TREE = r"""
import os, signal, sys, time
token, ready, total, escaper = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def live(i):
    if i % 2:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if i == escaper:
        os.setsid()
    for child in (2 * i + 1, 2 * i + 2):
        if child < total and os.fork() == 0:
            live(child)
    with open(ready, "a") as out:
        out.write(f"{i} {os.getsid(0)}\n")
    if i == 0:
        while len(open(ready).read().splitlines()) < total:
            time.sleep(0.01)
        print("tree ready", flush=True)
    while True:
        time.sleep(60)

live(0)
"""


def run(code: str, tmp_path: Path, *args: str, **kwargs: object) -> ProcResult:
    """Run a Python snippet through run_group with short, test-friendly limits."""
    options: dict[str, object] = {"timeout": 10.0, "grace": 0.5, **kwargs}
    return run_group(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=dict(os.environ),
        log_path=tmp_path / "logs" / "job.log",
        **options,  # type: ignore[arg-type]
    )


def survivors(token: str) -> list[psutil.Process]:
    """Live (non-zombie) processes with `token` in their argv or in TREE_TOKEN."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if token in process.cmdline() or process.environ().get("TREE_TOKEN") == token:
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process of our own in its own session, sleeping; reaped at the end whatever happens."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_exit_code_and_both_streams_reach_head_and_log_file(tmp_path: Path) -> None:
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit(3)"
    result = run(code, tmp_path)
    assert (result.exit_code, result.signal, result.ok) == (3, None, False)
    assert (result.timed_out, result.cancelled) == (False, False)
    assert result.head == "out\nerr\n"
    assert result.tail == ""
    log = result.log_path.read_text()
    assert log == result.head == result.output
    assert result.output_bytes == len(log.encode())


def test_clean_exit_is_ok_and_reports_the_leader_to_on_start(tmp_path: Path) -> None:
    started: list[Started] = []
    code = f"import os; print(os.getpid(), os.getpgid(0), os.environ['{MARKER_VAR}'])"
    marker_given = unique_marker()
    result = run(code, tmp_path, on_start=started.append, marker=marker_given)
    assert result.ok and result.exit_code == 0
    pid, pgid, marker = result.head.split()
    assert marker == marker_given  # in the job's environment, for the sweep
    assert started == [Started(int(pid), int(pgid), started[0].create_time, marker_given)]
    assert int(pid) == int(pgid)  # the leader of its own group
    assert started[0].create_time > 0


def test_death_by_signal_is_reported_as_signal_not_exit_code(tmp_path: Path) -> None:
    result = run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", tmp_path)
    assert (result.exit_code, result.signal, result.ok) == (None, signal.SIGKILL, False)
    assert not result.timed_out


@pytest.mark.parametrize(
    "size",
    [100, HEAD_BYTES + 8_000, HEAD_BYTES + TAIL_BYTES, 3 * (HEAD_BYTES + TAIL_BYTES)],
    ids=["small", "past-head", "head-plus-tail", "large"],
)
def test_stdin_is_fed_and_closed_and_output_is_split_into_head_and_tail(
    tmp_path: Path, size: int
) -> None:
    content = "".join(f"{i:07d}\n" for i in range(size // 8 + 1))[:size]
    cat = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
    result = run(cat, tmp_path, stdin_data=content.encode())
    assert result.ok and not result.timed_out  # reading to EOF ended: stdin was closed
    assert result.output_bytes == size
    assert result.head == content[:HEAD_BYTES]
    assert result.log_path.read_text() == content
    if size <= HEAD_BYTES + TAIL_BYTES:
        assert result.head + result.tail == content == result.output
    else:
        assert result.tail == content[-TAIL_BYTES:]
        assert f"{size} bytes in all" in result.output


def test_without_stdin_data_a_reader_sees_end_of_file_at_once(tmp_path: Path) -> None:
    result = run("import sys; print(repr(sys.stdin.read()))", tmp_path, timeout=5.0)
    assert result.ok and result.head.strip() == "''"
    assert result.duration_s < 4


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_child_that_never_reads_a_large_stdin_does_not_hang(tmp_path: Path, delay: float) -> None:
    code = f"import time; time.sleep({delay}); print('done')"
    result = run(code, tmp_path, stdin_data=b"p" * (8 * 1024 * 1024), timeout=15.0)
    assert result.ok and not result.timed_out
    assert result.head.strip() == "done"
    assert result.duration_s < 10


@pytest.mark.parametrize("case", ["missing-program", "not-executable", "missing-cwd"])
def test_a_program_that_cannot_start_raises_spawn_failed(tmp_path: Path, case: str) -> None:
    program, cwd = tmp_path / "no-such-program", tmp_path
    if case == "not-executable":
        program.write_text("#!/bin/sh\necho hi\n")
    elif case == "missing-cwd":
        program, cwd = Path(sys.executable), tmp_path / "gone"
    with pytest.raises(SpawnFailed, match="cannot run"):
        run_group(
            [str(program)],
            cwd=cwd,
            env=dict(os.environ),
            log_path=tmp_path / "job.log",
            timeout=5.0,
        )


def test_timeout_kills_a_30_process_tree_with_term_ignorers_and_an_escapee(
    tmp_path: Path,
) -> None:
    token, ready = f"tree-{uuid.uuid4().hex}", tmp_path / "ready"
    env = {**os.environ, "TREE_TOKEN": token}
    timeout, grace = 1.0, 0.5
    try:
        result = run_group(
            [sys.executable, "-c", TREE, token, str(ready), "30", "13"],
            cwd=tmp_path,
            env=env,
            log_path=tmp_path / "tree.log",
            timeout=timeout,
            grace=grace,
        )
        left = survivors(token)
    finally:
        for process in survivors(token):  # never leave the machine littered, even on failure
            process.kill()
    sessions = dict(line.split() for line in ready.read_text().splitlines())
    assert sorted(map(int, sessions)) == list(range(30))
    assert sessions["13"] != sessions["0"] and sessions["13"] == sessions["27"] == sessions["28"]
    assert "tree ready" in result.head
    assert result.timed_out and not result.cancelled and not result.ok
    assert result.exit_code is None
    assert left == []
    assert result.duration_s < timeout + grace + 4.0


@pytest.mark.parametrize("detach", [False, True], ids=["background-child", "setsid-daemon"])
def test_what_a_job_leaves_running_after_exiting_zero_is_killed(
    tmp_path: Path, detach: bool
) -> None:
    token = f"bg-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(\n"
        f"    [sys.executable, '-c', 'import time; time.sleep(60)', '{token}'],\n"
        f"    start_new_session={detach},\n)\n"
        "print(child.pid, flush=True)\n"
    )
    try:
        result = run(code, tmp_path)
        left = survivors(token)
    finally:
        for process in survivors(token):
            process.kill()
    assert result.exit_code == 0 and result.ok
    assert int(result.head.split()[0]) > 0
    assert left == []
    assert result.duration_s < 8


def test_a_descendant_that_cannot_be_found_does_not_hold_run_group_by_its_output_pipe(
    tmp_path: Path,
) -> None:
    # It leaves the session and drops the marker, so no sweep can find it, and it keeps the
    # output pipe open. The job must still end (the capture gives up after a few seconds).
    token = f"lost-{uuid.uuid4().hex}"
    code = (
        "import os, subprocess, sys\n"
        f"env = {{k: v for k, v in os.environ.items() if k != '{MARKER_VAR}'}}\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{token}'],"
        " env=env, start_new_session=True)\n"
        "print('leader done', flush=True)\n"
    )
    try:
        result = run(code, tmp_path, timeout=5.0)
    finally:
        for process in survivors(token):
            process.kill()
    assert result.ok and result.head == "leader done\n"
    assert result.duration_s < 12


def test_cancel_from_another_thread_stops_a_long_sleep_promptly(tmp_path: Path) -> None:
    token = CancelToken()
    timer = threading.Timer(0.3, token.cancel)
    timer.start()
    try:
        result = run("import time; time.sleep(60)", tmp_path, timeout=30.0, cancel=token)
    finally:
        timer.cancel()
        token.close()
    assert result.cancelled and not result.timed_out and not result.ok
    assert result.signal == signal.SIGTERM
    assert result.duration_s < 5


def test_cancel_before_start_ends_the_job_at_once(tmp_path: Path) -> None:
    token = CancelToken()
    token.cancel()
    token.cancel()  # idempotent
    result = run("import time; time.sleep(60)", tmp_path, timeout=30.0, cancel=token)
    token.close()
    assert result.cancelled and result.duration_s < 5
    closed = CancelToken()
    closed.close()
    closed.cancel()  # harmless after close
    assert closed.cancelled


def test_200_mb_of_output_keeps_memory_and_log_bounded(tmp_path: Path) -> None:
    code = (
        "import sys\nout = sys.stdout.buffer\nout.write(b'BEGIN\\n')\nblock = b'y' * (1 << 20)\n"
        "for _ in range(200):\n    out.write(block)\nout.write(b'\\nEND\\n')\n"
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = run(code, tmp_path, timeout=60.0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.ok
    assert result.output_bytes == 200 * (1 << 20) + len("BEGIN\n\nEND\n")
    assert result.head.startswith("BEGIN\n") and len(result.head) == HEAD_BYTES
    assert result.tail.endswith("y\nEND\n") and len(result.tail) == TAIL_BYTES
    size = result.log_path.stat().st_size
    assert LOG_MAX_BYTES < size <= LOG_MAX_BYTES + TAIL_BYTES + 256 * 1024
    with result.log_path.open("rb") as log:
        assert log.read(6) == b"BEGIN\n"
        log.seek(-(TAIL_BYTES + 200), os.SEEK_END)
        end = log.read()
    assert b"log truncated" in end and end.endswith(b"y\nEND\n")
    assert grown_mb < 64


def test_terminate_group_spares_a_reused_pid_and_kills_the_recorded_process(
    sleeper: subprocess.Popen[bytes],
) -> None:
    started = psutil.Process(sleeper.pid).create_time()
    assert terminate_group(sleeper.pid, started + 5.0, None, grace=0.5) is False
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(timeout=0.3)  # still running: another start time means another process
    assert terminate_group(sleeper.pid, started, None, grace=0.5) is True
    assert sleeper.wait(timeout=5) == -signal.SIGTERM


def test_terminate_group_finds_marked_processes_without_a_leader() -> None:
    marker = f"m-{uuid.uuid4().hex}"
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        env={**os.environ, MARKER_VAR: marker},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(process.pid).environ().get(MARKER_VAR) != marker:
            assert time.monotonic() < deadline
            time.sleep(0.01)  # the environment is readable once exec is done
        assert terminate_group(None, None, marker, grace=0.5) is True
        assert process.wait(timeout=5) == -signal.SIGTERM
    finally:
        process.kill()
        process.wait()


def test_process_alive_only_for_the_same_running_process(
    sleeper: subprocess.Popen[bytes],
) -> None:
    started = psutil.Process(sleeper.pid).create_time()
    assert process_alive(sleeper.pid, started) is True
    assert process_alive(sleeper.pid, started - 1.0) is False
    sleeper.terminate()
    deadline = time.monotonic() + 5
    while psutil.Process(sleeper.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert process_alive(sleeper.pid, started) is False  # exited, not yet reaped
    sleeper.wait()
    assert process_alive(sleeper.pid, started) is False
