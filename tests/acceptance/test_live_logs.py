"""Watching a job as it runs: its log is written as the agent prints, `orch task logs -f`
prints each line as it comes, and the API serves the running job's log."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import Serve
from tests.conftest import ORCH_EXE
from tests.helpers import add_task, command_agent

OrchExe = Callable[..., subprocess.CompletedProcess[str]]
# The analyst prints a line, then waits a while before the next: a line must show up while
# the agent still runs, not when it ends.
SLOW_AGENT = """\
import os, sys, time
sys.stdin.read()
role = os.environ["ORCH_ROLE"]
for n in range(3):
    print(f"{role} line {n}", flush=True)
    time.sleep(2.0 if role == "analyst" else 0)
open(os.environ["ORCH_ARTIFACT_PATH"], "w").write("analysis_status: BLOCKED\\nno way\\n")
"""


@pytest.fixture
def slow_task(
    orch_exe: OrchExe,
    make_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    command_agent(tmp_path, monkeypatch, SLOW_AGENT)
    added = orch_exe("repo", "add", "app", str(make_repo("app")))
    assert added.returncode == 0, added.stderr
    return add_task(orch_exe, "app", "Print slowly")


def read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert time.monotonic() < deadline, "no line in time"
    return line


def test_task_logs_follow_prints_each_line_as_the_agent_prints_it(slow_task: str) -> None:
    worker = subprocess.Popen([ORCH_EXE, "worker", "--drain"], stderr=subprocess.DEVNULL)
    follow = subprocess.Popen(
        [ORCH_EXE, "task", "logs", slow_task, "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: list[tuple[float, str]] = []
        deadline = time.monotonic() + 60
        while len([s for s in seen if "analyst line" in s[1]]) < 3:
            line = read_line(follow, deadline)
            if not line:
                break
            seen.append((time.monotonic(), line.rstrip("\n")))
        lines = [text for _, text in seen if "analyst line" in text]
        assert lines == ["analyst line 0", "analyst line 1", "analyst line 2"], seen
        # Each came while the agent ran: the first a good while before the last.
        times = [at for at, text in seen if "analyst line" in text]
        assert times[2] - times[0] > 2.0, seen
        _, err = follow.communicate(timeout=60)  # it ends once the task stopped
        assert follow.returncode == 0, err
        assert "── job" in err  # a header per job, on stderr
    finally:
        for process in (follow, worker):
            if process.poll() is None:
                process.kill()
            process.communicate()


def test_the_api_serves_a_running_jobs_log_and_follows_it(slow_task: str, serve: Serve) -> None:
    _, base_url = serve()  # with its worker; reads on loopback need no token
    deadline = time.monotonic() + 30
    while True:
        jobs = httpx.get(f"{base_url}/tasks/{slow_task}/jobs").json()
        running = [j for j in jobs if j["status"] == "running"]
        if running:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.1)
    url = f"{base_url}/tasks/{slow_task}/jobs/{running[0]['id']}/log"
    while "analyst line 0" not in (now := httpx.get(url)).text:
        assert time.monotonic() < deadline, (now.status_code, now.text)
        time.sleep(0.1)
    assert now.status_code == 200 and "analyst line 2" not in now.text  # it still runs
    with httpx.stream("GET", url, params={"follow": 1}, timeout=30) as followed:
        assert followed.status_code == 200
        text = "".join(followed.iter_text())  # ends when the job ends
    assert "analyst line 0" in text and "analyst line 2" in text


def test_watch_piped_prints_one_line_per_stage_move_as_it_happens(
    orch_exe: OrchExe, make_repo: Callable[..., Path], fake_bin: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ORCH_AGENT_BACKEND", "command")
    monkeypatch.setenv("ORCH_AGENT_COMMAND", "fake-agent {role}")
    monkeypatch.setenv("ORCH_TEST_RUNNER_ENABLED", "false")
    monkeypatch.setenv("FAKE_AGENT_SLEEP", "1.0")
    added = orch_exe("repo", "add", "app", str(make_repo("app")), "--skip-stages", "deploy")
    assert added.returncode == 0, added.stderr
    task_id = add_task(orch_exe, "app", "Watch me")
    watched = tmp_path / "watch.log"
    with watched.open("w") as out:
        watch = subprocess.Popen([ORCH_EXE, "task", "watch", task_id], stdout=out)
        worker = subprocess.Popen([ORCH_EXE, "worker", "--drain"], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while "analysis -> design" not in watched.read_text():
                assert time.monotonic() < deadline, watched.read_text()
                assert watch.poll() is None, "watch ended before the task did"
                time.sleep(0.1)
            assert "done" not in watched.read_text()  # written while the task still runs
            assert watch.wait(timeout=120) == 0 and worker.wait(timeout=120) == 0
        finally:
            for process in (watch, worker):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    lines = watched.read_text().splitlines()
    assert lines[0].endswith("(new) -> analysis by intake (round 1)"), lines
    assert any("review -> testing APPROVED by reviewer" in line for line in lines), lines
    assert lines[-1] == f"task {task_id} done"
