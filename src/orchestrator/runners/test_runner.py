"""test-runner: the testing stage without an LLM.

Runs the repo's test command (by default `python -m pytest <target>`, with a JUnit XML report
when the command runs pytest) in the task worktree with the worktree's own interpreter, maps
the exit code with `map_exit_code_to_status`, and writes `13-test-report.md` with the three
verdict fields always present and aligned, exactly as an LLM tester would, for
`check_tests_passed`.
"""

from __future__ import annotations

import itertools
import shlex
import time
from dataclasses import replace
from pathlib import Path

from orchestrator.pipeline.stages import Producer
from orchestrator.pipeline.verdicts import Judged
from orchestrator.proc import ProcResult
from orchestrator.redact import redact
from orchestrator.runners import smoke
from orchestrator.runners.base import (
    FailureKind,
    RunnerOutcome,
    RunnerRequest,
    SuiteRun,
    output_tail,
    run_suite,
)
from orchestrator.runners.junit import Counts, junit_counts, summary_counts, unittest_counts
from orchestrator.store import Repo
from orchestrator.workspace.checkout import checked_out
from orchestrator.workspace.merging import Update, merge_base_in, speculate, tree_of

# The report lists at least this many failing tests (docs/runners.md: at least the first 200).
FAILING_SHOWN = 500


def test_argv(repo: Repo) -> list[str]:
    """The repo's test command as an argv: the configured one, else pytest on the target."""
    if repo.test_command:
        return shlex.split(repo.test_command)
    return ["python", "-m", "pytest", repo.test_target]


def runs_pytest(argv: list[str]) -> bool:
    """True when the command is pytest itself (`pytest ...` or `python -m pytest ...`)."""
    if argv and Path(argv[0]).name in ("pytest", "py.test"):
        return True
    return any(a == "-m" and b == "pytest" for a, b in itertools.pairwise(argv))


# The lean JUnit XML writer (stdlib only, so it loads in any repo's own interpreter).
REPORT_PLUGIN = Path(__file__).parent / "pytest_plugin"


def with_junit(argv: list[str], report: Path) -> list[str]:
    """Make a pytest command write its JUnit XML report to `report`.

    pytest's own --junitxml builds an XML node per test as the suite runs: +3 % on 3000 silent
    fast tests, +11 % when each prints a line; the `orch_junit` plugin writes the same report
    at the end from what pytest already keeps, within noise (docs/runners.md).
    """
    return [*argv, "-p", "orch_junit", f"--orch-junit={report}"]


def with_pytest_junitxml(argv: list[str], report: Path) -> list[str]:
    """pytest's own JUnit XML report (xunit1, with file names): the fallback."""
    return [*argv, f"--junitxml={report}", "-o", "junit_family=xunit1"]


# What pytest prints (and exits 4, a usage error) when `-p orch_junit` cannot be imported.
PLUGIN_MISSING = "No module named 'orch_junit'"


def plugin_did_not_load(run: SuiteRun) -> bool:
    """True when pytest stopped at once because it could not import the report plugin.

    A suite that ran (passed, failed or timed out) is never rerun, even when its output
    happens to mention the plugin (the orchestrator's own tests do).
    """
    if run.executed or run.proc is None:
        return False
    return PLUGIN_MISSING in (run.proc.tail or run.proc.head)


def suite_counts(junit: Path, output: str) -> Counts:
    """Counts per test item as pytest's summary line shows them; failing tests from JUnit.

    The summary line is what people read (a teardown error there is its own item); the JUnit
    report names every failing test with its message. Either alone when the other is missing.
    """
    from_summary = summary_counts(output) or unittest_counts(output)
    if from_summary is not None and from_summary.tests_failed == 0:
        return from_summary  # nothing failed: the report has no failing tests to list
    from_junit = junit_counts(junit)
    if from_summary is None:
        return from_junit or Counts()
    if from_junit is None:
        return from_summary
    return replace(from_summary, failing=from_junit.failing, source="summary line and JUnit")


def _repo_report(
    request: RunnerRequest, started: float, counts: Counts, notes: list[str]
) -> Counts:
    """The counts and failing tests of the JUnit report the repo's command writes
    (`--junit-path`), when this run wrote it; else `counts`, with a note saying why."""
    path = request.worktree / (request.repo.junit_path or "")
    # A second's slack: some file systems keep modification times to the second.
    fresh = path.is_file() and path.stat().st_mtime >= started - 1.0
    found = junit_counts(path) if fresh else None
    if found is None:
        why = "is missing or unreadable" if fresh or not path.is_file() else "is older than the run"
        notes.append(f"The repo's JUnit report {request.repo.junit_path} {why}.")
        return counts
    return replace(found, source=f"the repo's JUnit report {request.repo.junit_path}")


class TestRunner:
    """Runs the repo's test suite and writes the test report."""

    producer = Producer.TEST_RUNNER
    __test__ = False  # not a pytest test class, whatever its name

    def run(self, request: RunnerRequest) -> RunnerOutcome:
        """Run the suite on the merge of the branch with its base, and with the tasks ahead
        in the merge queue when there are any (and the smoke check, when configured); a
        verdict or a tool error."""
        argv = test_argv(request.repo)
        if not request.worktree.is_dir():
            return RunnerOutcome.tool_error(f"the worktree {request.worktree} is missing")
        update = merge_base_in(request.repo, request.task, "to test the merge")
        if update.conflicts:
            text = render_report(
                passed=False,
                kind=FailureKind.CONFLICT,
                counts=Counts(),
                command=argv,
                proc=None,
                timeout_s=request.settings.test_runner_timeout_s,
                checks=[_conflict_note(request, update)],
                judged=Judged(update.tip, update.base),
            )
            return RunnerOutcome(artifact=redact(text, request.secrets))
        message = f"Test {request.task.branch} behind the merge queue (task {request.task.id})"
        speculative = speculate(request.worktree, update.base, update.tip, request.ahead, message)
        tested = speculative[0] if speculative else update.tip
        judged = Judged(tested, update.base, tree_of(request.worktree, tested))
        notes = _base_note(request, update)
        if speculative is not None:
            notes.append(
                f"Tested on top of the tasks ahead in the merge queue ({', '.join(speculative[1])}"
                "): the branch merged with what each will land as, the tree that ships once "
                "they land."
            )
        with checked_out(request.worktree, tested, request.task.branch):
            return self._judge(request, argv, judged, notes)

    def _judge(
        self, request: RunnerRequest, argv: list[str], judged: Judged, notes: list[str]
    ) -> RunnerOutcome:
        junit = request.log_path.with_suffix(".junit.xml")
        junit.unlink(missing_ok=True)
        started = time.time()  # a repo's own report counts only when this run wrote it
        timeout = request.settings.test_runner_timeout_s
        if runs_pytest(argv):
            command = with_junit(argv, junit)
            run = run_suite(command, request, timeout, python_path=REPORT_PLUGIN)
            if plugin_did_not_load(run):
                # An isolated interpreter ignores PYTHONPATH: run again with pytest's own
                # report rather than judge a suite that did not run. Only a run that stopped
                # at pytest's usage error is rerun, so the suite runs in full at most once.
                command = with_pytest_junitxml(argv, junit)
                run = run_suite(command, request, timeout)
        else:
            command = argv
            run = run_suite(command, request, timeout)
        if run.cancelled:
            return RunnerOutcome(cancelled=True)
        if not run.executed or run.proc is None:
            return RunnerOutcome.tool_error(run.problem, run.proc)
        if runs_pytest(argv) and "No module named pytest" in (run.proc.tail or run.proc.head):
            # `python -m pytest` without pytest exits 1, which would read as failing tests.
            return RunnerOutcome.tool_error(f"pytest is not installed for {command[0]}", run.proc)

        checks: list[str] = []
        smoke_url = request.settings.test_runner_smoke_url
        if smoke_url:
            result = smoke.check(smoke_url)
            if result.unreachable:
                return RunnerOutcome.tool_error(f"smoke check: {result.summary}", run.proc)
            checks.append(result.summary)
            smoke_failed = not result.ok
        else:
            smoke_failed = False

        counts = suite_counts(junit, run.proc.tail or run.proc.head)
        if request.repo.junit_path:
            counts = _repo_report(request, started, counts, checks)
        passed = run.passed and not smoke_failed
        kind = run.failure_kind(FailureKind.TESTS)
        if kind is FailureKind.NONE and smoke_failed:
            kind = FailureKind.SMOKE
        text = render_report(
            passed=passed,
            kind=kind,
            counts=counts,
            command=argv,
            proc=run.proc,
            timeout_s=request.settings.test_runner_timeout_s,
            checks=[*notes, *checks],
            judged=judged,
        )
        return RunnerOutcome(
            artifact=redact(text, request.secrets),
            exit_code=run.proc.exit_code,
            duration_s=run.proc.duration_s,
        )

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The FAILED report once the suite could not run `attempts` times."""
        return render_report(
            passed=False,
            kind=FailureKind.INFRA,
            counts=Counts(),
            command=test_argv(request.repo),
            proc=None,
            timeout_s=request.settings.test_runner_timeout_s,
            checks=[f"the suite could not run in {attempts} attempts; last reason: {reason}"],
        )


def render_report(
    *,
    passed: bool,
    kind: FailureKind,
    counts: Counts,
    command: list[str],
    proc: ProcResult | None,
    timeout_s: float,
    checks: list[str],
    judged: Judged | None = None,
) -> str:
    """`13-test-report.md`: the three verdict fields, aligned, the commits they judged, then
    the evidence."""
    verdict = "PASS" if passed else "FAIL"
    # Aligned (docs/runners.md): each field says what `result:` says. A FAIL never reads
    # `tests_failed: 0`, which on its own means nothing failed; when no test item failed (a
    # timeout, a smoke break, infra) the run itself is the one failure. The table below keeps
    # the raw counts.
    failed = 0 if passed else max(counts.tests_failed, 1)
    lines = [
        "# Test report",
        "",
        f"result: {verdict}",
        f"status: {verdict}",
        f"tests_failed: {failed}",
        f"failure_kind: {kind}",
        "producer: test-runner",
        *(judged.lines() if judged else []),
        "",
        "| passed | failed | errors | skipped | duration |",
        "|---|---|---|---|---|",
        f"| {counts.passed} | {counts.failed} | {counts.errors} | {counts.skipped} | "
        f"{_duration(counts, proc)} |",
        "",
        f"Command: `{shlex.join(command)}`"
        + (f", exit {proc.exit_code}" if proc and proc.exit_code is not None else "")
        + (f", killed after its {timeout_s:g}s timeout" if kind is FailureKind.TIMEOUT else "")
        + f". Counts from: {counts.source}.",
    ]
    for check in checks:
        lines += ["", check]
    if counts.failing:
        lines += ["", f"## Failing tests ({len(counts.failing)})", ""]
        lines += [f"- `{f.test_id}`: {f.message}" for f in counts.failing[:FAILING_SHOWN]]
        if len(counts.failing) > FAILING_SHOWN:
            lines.append(f"- ... and {len(counts.failing) - FAILING_SHOWN} more (see the log)")
    if proc is not None:
        lines += ["", "## Output (tail)", "", output_tail(proc)]
    return "\n".join(lines) + "\n"


def _base_note(request: RunnerRequest, update: Update) -> list[str]:
    """What the report says of the base, when it brought commits the branch lacked."""
    if not update.merged:
        return []
    default = request.repo.default_branch
    commits = "\n".join(f"- {line}" for line in update.brought)
    return [
        f"The suite ran on the merge with `{default}` at {update.base[:12]}: the branch was "
        f"behind, and the orchestrator merged `{default}` into it first (its own commit), "
        f"bringing:\n\n{commits}"
    ]


def _conflict_note(request: RunnerRequest, update: Update) -> str:
    default = request.repo.default_branch
    paths = "\n".join(f"- `{path}`" for path in update.conflicts)
    return (
        f"The branch conflicts with `{default}` at {update.base[:12]}: nothing was tested and "
        f"nothing was changed. The next round starts with `{default}` merged into the "
        f"branch and these paths to resolve:\n\n{paths}"
    )


def _duration(counts: Counts, proc: ProcResult | None) -> str:
    seconds = proc.duration_s if proc is not None else counts.duration_s
    return f"{seconds:.2f}s" if seconds is not None else "-"


__all__ = ["TestRunner", "render_report", "runs_pytest", "test_argv"]
