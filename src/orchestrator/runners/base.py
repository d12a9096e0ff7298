"""The runner contract: a deterministic producer that never raises and answers in two levels.

1. Verdict: the suite executed (passed or failed, or was killed at its timeout). The runner
   hands back the artifact text, which goes to the stage's unchanged gate.
2. Tool error: the suite did not execute (ERROR exit, worktree or interpreter missing, spawn
   failure, an exception inside the runner). No verdict: the job is deferred and retried.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from orchestrator.errors import SpawnFailed
from orchestrator.pipeline.stages import Producer
from orchestrator.pipeline.verdicts import Judged
from orchestrator.proc import CancelToken, ProcResult, Started, run_group
from orchestrator.proc.env import child_env
from orchestrator.self_deploy import SuiteStatus, map_exit_code_to_status
from orchestrator.settings import Settings
from orchestrator.store import Job, Repo, Task
from orchestrator.workspace.merging import Ahead

log = logging.getLogger(__name__)


class FailureKind(StrEnum):
    """Why a runner's verdict is a failure (`failure_kind:` in its artifact)."""

    NONE = "none"
    TESTS = "tests"  # the suite ran and found failures
    TIMEOUT = "timeout"  # the suite ran past its timeout and was killed
    INFRA = "infra"  # the suite could not run, and the infra-retry budget is spent
    SMOKE = "smoke"  # the read-only smoke check found a contract break
    CONFLICT = "conflict"  # the merge conflicts
    DIRTY = "dirty"  # the user's working copy has changes the merge would touch
    DEPLOY = "deploy"  # the deploy command failed
    UNHEALTHY = "unhealthy"  # the health URL failed during the watch
    CHECK = "check"  # a repo's check command ran and said no


@dataclass(frozen=True)
class RunnerRequest:
    """Everything a runner needs for one attempt."""

    task: Task
    repo: Repo
    job: Job
    settings: Settings
    artifact_path: Path
    log_path: Path
    cancel: CancelToken
    on_start: Callable[[Started], None]
    marker: str
    secrets: tuple[str, ...] = ()
    # For staging and the deploy: what this round's test report judged (None: no binding).
    tested: Judged | None = None
    # For the test-runner: the tasks that will merge before this one, in queue order.
    ahead: tuple[Ahead, ...] = ()
    # How many times this stage was started in this round, this time included (a job
    # abandoned by a dead worker is replaced by a fresh one, so `job.attempt` restarts).
    stage_attempt: int = 1

    @property
    def worktree(self) -> Path:
        """The task's worktree."""
        return Path(self.task.worktree)


@dataclass(frozen=True)
class RunnerOutcome:
    """A verdict (the artifact text), a tool error (the reason), or stopped; never more
    than one."""

    artifact: str | None = None
    reason: str = ""
    cancelled: bool = False
    exit_code: int | None = None
    duration_s: float | None = None

    @property
    def is_verdict(self) -> bool:
        """True when the runner produced an artifact for the gate."""
        return self.artifact is not None

    @classmethod
    def tool_error(cls, reason: str, proc: ProcResult | None = None) -> RunnerOutcome:
        """The suite did not execute: defer and retry."""
        if proc is None:
            return cls(reason=reason)
        return cls(reason=reason, exit_code=proc.exit_code, duration_s=proc.duration_s)


class Runner(Protocol):
    """A deterministic runner of one stage."""

    producer: Producer

    def run(self, request: RunnerRequest) -> RunnerOutcome:
        """Do the stage's work; may raise (the caller guards it)."""
        ...

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The FAILED artifact written once the infra-retry budget is spent."""
        ...


def run_guarded(runner: Runner, request: RunnerRequest) -> RunnerOutcome:
    """Run a runner so that it never raises: any exception becomes a tool error."""
    try:
        return runner.run(request)
    except Exception as exc:
        log.exception("%s raised while running job %s", runner.producer, request.job.id)
        return RunnerOutcome.tool_error(f"{runner.producer} raised {type(exc).__name__}: {exc}")


# --- running a suite --------------------------------------------------------------------------


class InterpreterMissing(Exception):
    """The worktree has a virtualenv without a working interpreter."""


def interpreter(worktree: Path) -> str:
    """The worktree's own Python (its `.venv`) if it has one, else the orchestrator's."""
    venv = worktree / ".venv"
    if not venv.exists():
        return sys.executable
    python = venv / "bin" / "python"
    if not (python.exists() and os.access(python, os.X_OK)):
        raise InterpreterMissing(f"the worktree's .venv has no working interpreter ({python})")
    return str(python)


def python_argv(argv: list[str], worktree: Path) -> list[str]:
    """`python ...` runs with the worktree's interpreter; other commands run as they are."""
    if argv and argv[0] in ("python", "python3"):
        return [interpreter(worktree), *argv[1:]]
    return argv


def suite_env(
    worktree: Path, python_path: Path | None = None, variables: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Our environment minus secrets, plus `variables`; with the worktree's `.venv` first on
    PATH if it has one.

    `python_path` goes first on PYTHONPATH (the test-runner's report plugin lives there).
    """
    # Python suites write each line as it comes: their log is followed while they run.
    extra: dict[str, str] = {"PYTHONUNBUFFERED": "1", **(variables or {})}
    venv = worktree / ".venv"
    if venv.is_dir():
        extra["VIRTUAL_ENV"] = str(venv)
        extra["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    if python_path is not None:
        current = os.environ.get("PYTHONPATH")
        extra["PYTHONPATH"] = os.pathsep.join([str(python_path), *([current] if current else [])])
    return child_env(extra)


@dataclass(frozen=True)
class SuiteRun:
    """A suite that executed (whatever it found), or why it did not."""

    proc: ProcResult | None
    status: SuiteStatus
    problem: str = ""  # set when the suite did not execute

    @property
    def executed(self) -> bool:
        """True for PASSED and FAILED (a timeout counts: it ran, and ran too long)."""
        return self.status is not SuiteStatus.ERROR

    @property
    def cancelled(self) -> bool:
        """Stopped by us (task cancelled, worker stopping): no verdict and no failure."""
        return self.proc is not None and self.proc.cancelled

    @property
    def timed_out(self) -> bool:
        """Killed at its timeout: a FAILED verdict with failure_kind timeout."""
        return self.proc is not None and self.proc.timed_out

    @property
    def passed(self) -> bool:
        """It ran and passed."""
        return self.status is SuiteStatus.PASSED

    def failure_kind(self, failing: FailureKind) -> FailureKind:
        """none when it passed, timeout when it was killed at its timeout, else `failing`."""
        if self.timed_out:
            return FailureKind.TIMEOUT
        return FailureKind.NONE if self.passed else failing


def run_suite(
    argv: list[str],
    request: RunnerRequest,
    timeout_s: float,
    python_path: Path | None = None,
    variables: Mapping[str, str] | None = None,
) -> SuiteRun:
    """Run a suite in the worktree through proc_group and map its exit code; `variables`
    are added to its environment."""
    if not request.worktree.is_dir():
        return SuiteRun(None, SuiteStatus.ERROR, f"the worktree {request.worktree} is missing")
    try:
        argv = python_argv(argv, request.worktree)
        proc = run_group(
            argv,
            cwd=request.worktree,
            env=suite_env(request.worktree, python_path, variables),
            log_path=request.log_path,
            timeout=timeout_s,
            grace=request.settings.kill_grace_s,
            cancel=request.cancel,
            on_start=request.on_start,
            marker=request.marker,
            secrets=request.secrets,
        )
    except InterpreterMissing as exc:
        return SuiteRun(None, SuiteStatus.ERROR, str(exc))
    except SpawnFailed as exc:
        return SuiteRun(None, SuiteStatus.ERROR, str(exc))
    if proc.timed_out:
        return SuiteRun(proc, SuiteStatus.FAILED)
    if proc.cancelled:
        return SuiteRun(proc, SuiteStatus.ERROR, "cancelled")
    code = proc.exit_code if proc.exit_code is not None else -(proc.signal or 0)
    status = map_exit_code_to_status(code)
    if status is SuiteStatus.ERROR:
        how = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
        return SuiteRun(proc, status, f"{' '.join(argv)} did not run meaningfully ({how})")
    return SuiteRun(proc, status)


# --- artifacts -------------------------------------------------------------------------------


def fenced(text: str, info: str = "text") -> str:
    """`text` in a code fence no line of it can close, so it can never forge a verdict key."""
    longest = 0
    run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip()}\n{fence}"


def output_tail(proc: ProcResult | None, lines: int = 60) -> str:
    """The last lines of a suite's output, fenced."""
    if proc is None:
        return "(no output: the command did not start)"
    text = proc.tail or proc.head
    tail = "\n".join(text.rstrip().splitlines()[-lines:]) or "(no output)"
    return fenced(tail)


def command_report(
    heading: list[str],
    argv: list[str] | tuple[str, ...],
    proc: ProcResult | None,
    kind: FailureKind,
    timeout_s: float,
    note: str = "",
) -> str:
    """A suite's or a command's artifact: its `heading` (title and verdict lines), then the
    command, its exit and duration, a note, and the tail of what it printed."""
    exit_text = f"{proc.exit_code}" if proc and proc.exit_code is not None else "-"
    duration = f"{proc.duration_s:.2f}s" if proc else "-"
    killed = f" (killed at its {timeout_s:g}s timeout)" if kind is FailureKind.TIMEOUT else ""
    lines = [
        *heading,
        "",
        f"Command: `{shlex.join(argv)}`, exit {exit_text}, duration {duration}{killed}.",
    ]
    if note:
        lines += ["", note + "."]
    if proc is not None:
        lines += ["", "## Output (tail)", "", output_tail(proc)]
    return "\n".join(lines) + "\n"
