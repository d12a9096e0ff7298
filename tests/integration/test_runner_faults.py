"""The fault matrix of the test-runner and the staging-runner, run through the real worker.

Every LLM stage is the contract-following fake agent and passes at once, so what is under
test is only what the runner makes of its suite: a verdict for the gate, or a tool error that
defers the job and, once the infra-retry budget is spent, fails the stage as infra (SPEC
sections 4 and 8). Each fault runs against both runners; no fault ever reads as a pass.
"""

from __future__ import annotations

import itertools
import shlex
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import orchestrator.jobs.reserved as reserved
import orchestrator.scheduler.worker as worker_module
from orchestrator.intake import submit_task
from orchestrator.jobs.context import JobContext, JobEnd
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.runners.base import Runner, RunnerOutcome, RunnerRequest
from orchestrator.runners.staging_runner import StagingRunner
from orchestrator.runners.test_runner import TestRunner
from orchestrator.scheduler import Worker
from orchestrator.settings import Settings
from orchestrator.store import Job, RepoSpec, Store, Task
from tests.helpers import fake_agent_settings

BUDGET = 2  # <runner>_infra_retries: two deferrals, then the stage fails as infra
BACKOFFS = (0.05, 0.1)  # defer_backoff_s, then doubled and capped by defer_backoff_max_s
SKIPPED = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})
REPORT = "13-test-report.md"


def py(code: str) -> str:
    """A command running `code` (`python` becomes the worktree's interpreter)."""
    return shlex.join(["python", "-c", code])


PASSES = py("pass")  # a suite that would pass, were it allowed to run


@dataclass(frozen=True)
class Subject:
    """A runner under the fault matrix: where its command goes and how its FAILED reads."""

    producer: str
    stage: Stage
    runner: type[Runner]
    artifact: str
    key: str  # its settings prefix: <key>_infra_retries, <key>_timeout_s
    command_field: str  # the repo's command the runner runs
    skipped: frozenset[Stage]
    failed: str  # the verdict value of a FAILED artifact
    failed_lines: tuple[str, ...]  # the verdict keys of any FAILED artifact but failure_kind
    timeout_note: str


TEST_RUNNER = Subject(
    "test-runner",
    Stage.TESTING,
    TestRunner,
    REPORT,
    "test_runner",
    "test_command",
    SKIPPED,
    "FAIL",
    # Aligned with `result: FAIL`: when no test item failed, the run itself is the failure.
    ("result: FAIL", "status: FAIL", "tests_failed: 1"),
    "killed after its 1s timeout",
)
STAGING_RUNNER = Subject(
    "staging-runner",
    Stage.DEPLOY_STAGING,
    StagingRunner,
    "15-staging-log.md",
    "staging_runner",
    "staging_command",
    frozenset({Stage.DEPLOY, Stage.POST_DEPLOY}),
    "FAILED",
    ("staging_status: FAILED",),
    "killed at its 1s timeout",
)
SUBJECTS = [pytest.param(TEST_RUNNER, id="test-runner"), pytest.param(STAGING_RUNNER, id="staging")]

Fault = Callable[[pytest.MonkeyPatch, Task, Subject], None]
Spans = dict[int, list[tuple[float, float]]]


def settings_for(db_url: str, home: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "defer_backoff_s": BACKOFFS[0],
        "defer_backoff_max_s": BACKOFFS[1],
        "test_runner_infra_retries": BUDGET,
        "staging_runner_infra_retries": BUDGET,
        "kill_grace_s": 0.5,
        "max_dev_retries": 1,
        **overrides,
    }
    return fake_agent_settings(db_url, home, **values)


def drain(store: Store, settings: Settings) -> None:
    assert Worker(store, settings, drain=True).run() == 0


def submit(
    store: Store,
    home: Path,
    make_repo: Callable[..., Path],
    command: str | None,
    files: dict[str, str] | None = None,
    subject: Subject = TEST_RUNNER,
) -> Task:
    """A task on a repo whose `subject` runs `command` (the test command otherwise passes)."""
    path = make_repo("app", files)
    commands = {"test_command": PASSES, subject.command_field: command}
    spec = RepoSpec(path=str(path), default_branch="main", skip_stages=subject.skipped, **commands)
    store.add_repo("app", spec)
    return submit_task(store, home, "app", "Add a feature", "make it so")


def time_attempts(monkeypatch: pytest.MonkeyPatch) -> Spans:
    """Record when each runner attempt started and ended, per job (the runner is unchanged)."""
    spans: Spans = defaultdict(list)
    real = reserved.run_guarded

    def timed(runner: Runner, request: RunnerRequest) -> RunnerOutcome:
        start = time.monotonic()
        try:
            return real(runner, request)
        finally:
            spans[request.job.id].append((start, time.monotonic()))

    monkeypatch.setattr(reserved, "run_guarded", timed)
    return spans


def jobs_in(store: Store, task: Task, stage: Stage = Stage.TESTING) -> list[Job]:
    return [job for job in store.task_jobs(task.id) if job.stage is stage]


def moves_from(
    store: Store, task: Task, stage: Stage = Stage.TESTING
) -> list[tuple[str, str | None, str, int]]:
    return [
        (e.to_stage, e.verdict, e.producer, e.round)
        for e in store.events(task.id)
        if e.from_stage == stage
    ]


def report_lines(store: Store, task: Task, round: int, name: str = REPORT) -> list[str]:
    return store.get_artifact(task.id, name, round=round).text.splitlines()


# --- faults that keep the suite from running --------------------------------------------------


def worktree_gone_while_running(monkeypatch: pytest.MonkeyPatch, task: Task, who: Subject) -> None:
    # The LLM stages run and commit in the worktree, so deleting it for good right after intake
    # would block the task in analysis, long before the runner's stage. Instead the worktree is
    # missing exactly while each of the runner's jobs runs: moved away just before the real
    # launch_job, put back after it. The runner sees a missing worktree on every attempt.
    real = worker_module.launch_job

    def launch(ctx: JobContext, job: Job) -> JobEnd:
        if job.stage is not who.stage:
            return real(ctx, job)
        worktree = Path(task.worktree)
        away = worktree.with_name(worktree.name + ".away")
        worktree.rename(away)
        try:
            return real(ctx, job)
        finally:
            away.rename(worktree)

    monkeypatch.setattr(worker_module, "launch_job", launch)


def venv_without_interpreter(_monkeypatch: pytest.MonkeyPatch, task: Task, _who: Subject) -> None:
    # .venv is never committed, so it cannot come with the repo: it appears after intake.
    (Path(task.worktree) / ".venv" / "bin").mkdir(parents=True)


def runner_raises(monkeypatch: pytest.MonkeyPatch, _task: Task, who: Subject) -> None:
    def explode(self: Runner, request: RunnerRequest) -> RunnerOutcome:
        raise RuntimeError("the runner exploded")

    monkeypatch.setattr(who.runner, "run", explode)


EXIT_CODES = (3, 4, 5, 126, 127)
FAULTS = [
    pytest.param(PASSES, worktree_gone_while_running, "is missing", id="worktree-missing"),
    *[
        pytest.param(py(f"import sys; sys.exit({code})"), None, f"(exit {code})", id=f"exit-{code}")
        for code in EXIT_CODES
    ],
    pytest.param(
        py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"),
        None,
        "killed by signal 9",
        id="foreign-sigkill",
    ),
    pytest.param(
        PASSES, runner_raises, "raised RuntimeError: the runner exploded", id="runner-raises"
    ),
]
# The staging-runner runs after the test-runner, which would meet the broken .venv first.
NO_INTERPRETER = pytest.param(
    PASSES, venv_without_interpreter, "no working interpreter", id="no-interpreter"
)
MATRIX = [
    *[pytest.param(TEST_RUNNER, *case.values, id=f"test-runner-{case.id}") for case in FAULTS],
    pytest.param(TEST_RUNNER, *NO_INTERPRETER.values, id="test-runner-no-interpreter"),
    *[pytest.param(STAGING_RUNNER, *case.values, id=f"staging-{case.id}") for case in FAULTS],
]


@pytest.mark.parametrize(("subject", "command", "fault", "reason"), MATRIX)
def test_a_suite_that_cannot_run_is_deferred_then_fails_the_stage_as_infra(
    subject: Subject,
    command: str,
    fault: Fault | None,
    reason: str,
    fake_bin: Path,
    make_repo: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = submit(store, orch_home, make_repo, command, subject=subject)
    if fault is not None:
        fault(monkeypatch, task, subject)
    spans = time_attempts(monkeypatch)
    drain(store, settings_for(db_url, orch_home))

    # Each round: deferred BUDGET times, then one FAILED verdict; never a verdict before that.
    jobs = jobs_in(store, task, subject.stage)
    assert [(j.round, j.infra_failures, j.attempt, j.producer) for j in jobs] == [
        (1, BUDGET, BUDGET + 1, subject.producer),
        (2, BUDGET, BUDGET + 1, subject.producer),
    ]
    for job in jobs:  # the next attempt waited out its backoff: 0.05 s, then 0.1 s
        attempts = spans[job.id]
        waits = [nxt[0] - prev[1] for prev, nxt in itertools.pairwise(attempts)]
        assert len(waits) == BUDGET
        assert all(wait >= backoff - 0.005 for wait, backoff in zip(waits, BACKOFFS, strict=True))

    lines = report_lines(store, task, round=1, name=subject.artifact)
    for line in (*subject.failed_lines, "failure_kind: infra"):
        assert line in lines
    assert f"could not run in {BUDGET + 1} attempts" in "\n".join(lines)
    assert reason in "\n".join(lines)

    # The gate handles it as FAILED: back to development, and the second round fails the task.
    assert moves_from(store, task, subject.stage) == [
        ("development", subject.failed, subject.producer, 1),
        ("failed", subject.failed, subject.producer, 2),
    ]
    failed = store.get_task(task.id)
    assert (failed.state, failed.stage, failed.round) == (TaskState.FAILED, subject.stage, 2)
    alerts = store.list_alerts(task_id=task.id)
    assert sorted(a.kind for a in alerts) == ["infra", "infra", "retry_limit"]
    for alert in (a for a in alerts if a.kind == "infra"):
        assert f"{subject.producer} could not run" in alert.message and reason in alert.message


# --- suites that ran: verdicts, never deferred -------------------------------------------------


def test_a_passing_suite_is_a_pass_and_the_task_is_done(
    fake_bin: Path, make_repo: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    files = {"README.md": "# app\n", "tests/test_ok.py": "def test_ok():\n    assert 1 + 1 == 2\n"}
    task = submit(store, orch_home, make_repo, None, files)  # the default: python -m pytest tests
    drain(store, settings_for(db_url, orch_home))

    assert store.get_task(task.id).state is TaskState.DONE
    lines = report_lines(store, task, round=1)
    for line in ("result: PASS", "status: PASS", "tests_failed: 0", "failure_kind: none"):
        assert line in lines
    text = "\n".join(lines)
    assert "| 1 | 0 | 0 | 0 |" in text and "Counts from: summary line." in text
    assert moves_from(store, task) == [("done", "PASS", "test-runner", 1)]
    assert [(j.infra_failures, j.attempt) for j in jobs_in(store, task)] == [(0, 1)]
    assert store.list_alerts(task_id=task.id) == []


def test_an_interpreter_that_ignores_pythonpath_falls_back_to_pytests_own_report(
    fake_bin: Path, make_repo: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    files = {
        "README.md": "# app\n",
        "tests/test_two.py": "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 0\n",
    }
    # -I (isolated mode) ignores PYTHONPATH, so the lean report plugin cannot load.
    task = submit(store, orch_home, make_repo, "python -I -m pytest tests", files)
    drain(store, settings_for(db_url, orch_home, max_dev_retries=0))

    text = "\n".join(report_lines(store, task, round=1))
    assert "failure_kind: tests" in text and "tests_failed: 1" in text
    assert "`tests/test_two.py::test_bad`" in text  # named from pytest's own JUnit report
    assert "generated xml file" in text, text  # pytest wrote its own report
    assert [(j.infra_failures, j.attempt) for j in jobs_in(store, task)] == [(0, 1)]


def test_a_failing_suite_sends_the_task_back_with_the_failing_test_named(
    fake_bin: Path, make_repo: Callable[..., Path], store: Store, db_url: str, orch_home: Path
) -> None:
    suite = "def test_ok():\n    pass\n\n\ndef test_sum():\n    assert 1 + 1 == 3, 'SUM-IS-OFF'\n"
    files = {"README.md": "# app\n", "tests/test_math.py": suite}
    task = submit(store, orch_home, make_repo, "python -m pytest tests", files)
    drain(store, settings_for(db_url, orch_home))

    lines = report_lines(store, task, round=1)
    for line in ("result: FAIL", "status: FAIL", "tests_failed: 1", "failure_kind: tests"):
        assert line in lines
    listed = [line for line in lines if line.startswith("- `tests/")]  # id: short message
    assert len(listed) == 1 and "## Failing tests (1)" in lines
    assert listed[0].startswith("- `tests/test_math.py::test_sum`:") and "SUM-IS-OFF" in listed[0]
    assert [(j.round, j.infra_failures, j.attempt) for j in jobs_in(store, task)] == [
        (1, 0, 1),
        (2, 0, 1),
    ]
    assert moves_from(store, task) == [
        ("development", "FAIL", "test-runner", 1),
        ("failed", "FAIL", "test-runner", 2),
    ]
    prompt = (orch_home / "tasks" / task.id / "prompt-developer-r2.txt").read_text()
    assert "tests/test_math.py::test_sum" in prompt  # the developer is told what failed
    assert [a.kind for a in store.list_alerts(task_id=task.id)] == ["retry_limit"]
    assert store.get_task(task.id).state is TaskState.FAILED


@pytest.mark.parametrize("subject", SUBJECTS)
def test_a_suite_that_hangs_past_its_timeout_is_a_failed_verdict_at_once(
    subject: Subject,
    fake_bin: Path,
    make_repo: Callable[..., Path],
    store: Store,
    db_url: str,
    orch_home: Path,
) -> None:
    hangs = py("import time; time.sleep(60)")
    task = submit(store, orch_home, make_repo, hangs, subject=subject)
    drain(store, settings_for(db_url, orch_home, **{f"{subject.key}_timeout_s": 1}))

    jobs = jobs_in(store, task, subject.stage)
    assert all(0.9 <= (j.duration_s or 0) < 30 for j in jobs)  # killed at 1 s, not waited out
    lines = report_lines(store, task, round=1, name=subject.artifact)
    for line in (*subject.failed_lines, "failure_kind: timeout"):
        assert line in lines
    assert subject.timeout_note in "\n".join(lines)
    assert [(j.round, j.infra_failures, j.attempt) for j in jobs] == [(1, 0, 1), (2, 0, 1)]
    assert moves_from(store, task, subject.stage) == [
        ("development", subject.failed, subject.producer, 1),
        ("failed", subject.failed, subject.producer, 2),
    ]
    assert [a.kind for a in store.list_alerts(task_id=task.id)] == ["retry_limit"]
