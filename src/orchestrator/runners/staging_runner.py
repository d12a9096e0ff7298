"""staging-runner: the deploy-staging stage without an LLM.

Runs the repo's staging command in the task worktree, maps its exit code with
`map_exit_code_to_status`, and writes `15-staging-log.md` with `staging_status:` for the
unchanged `check_staging_status` gate. FAILED sends the task back to development, exactly
like a FAILED verdict from the LLM deployer. A repo with no staging command has nothing to
stage: SKIPPED, by code (an LLM asked to stage nothing would rubber-stamp it PASSED).
"""

from __future__ import annotations

import shlex

from orchestrator.pipeline.stages import Producer
from orchestrator.pipeline.verdicts import Judged
from orchestrator.proc import ProcResult
from orchestrator.redact import redact
from orchestrator.runners.base import (
    FailureKind,
    RunnerOutcome,
    RunnerRequest,
    command_report,
    run_suite,
)
from orchestrator.workspace import git
from orchestrator.workspace.checkout import checked_out
from orchestrator.workspace.merging import base_ref, commit_of


class StagingRunner:
    """Runs the repo's staging suite and writes the staging log."""

    producer = Producer.STAGING_RUNNER

    def run(self, request: RunnerRequest) -> RunnerOutcome:
        """Run the staging command; a verdict or a tool error."""
        argv = shlex.split(request.repo.staging_command or "")
        if not argv:
            return RunnerOutcome(artifact=render_skipped(request.repo.name))
        if not request.worktree.is_dir():
            return RunnerOutcome.tool_error(f"the worktree {request.worktree} is missing")
        judged = _to_stage(request)
        with checked_out(request.worktree, judged.tested, request.task.branch):
            run = run_suite(argv, request, request.settings.staging_runner_timeout_s)
        if run.cancelled:
            return RunnerOutcome(cancelled=True)
        if not run.executed or run.proc is None:
            return RunnerOutcome.tool_error(run.problem, run.proc)
        passed, kind = run.passed, run.failure_kind(FailureKind.TESTS)
        timeout_s = request.settings.staging_runner_timeout_s
        text = render_log(passed, kind, argv, run.proc, timeout_s, judged=judged)
        return RunnerOutcome(
            artifact=redact(text, request.secrets),
            exit_code=run.proc.exit_code,
            duration_s=run.proc.duration_s,
        )

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The FAILED log once the staging suite could not run `attempts` times."""
        argv = shlex.split(request.repo.staging_command or "")
        note = f"The staging suite could not run in {attempts} attempts; last reason: {reason}"
        return render_log(False, FailureKind.INFRA, argv, None, 0.0, note)


def _to_stage(request: RunnerRequest) -> Judged:
    """What staging runs: the very commit the test-runner judged (the merge with the base and
    with the tasks ahead), so that staging, too, judges what ships; the worktree's tip when
    there is no binding (an LLM tester) or when that commit was made on another machine."""
    tested = request.tested
    if tested is not None and git.has_ref(request.worktree, tested.tested):
        return tested
    head = git.head(request.worktree)
    return Judged(head, commit_of(request.worktree, base_ref(request.repo)))


def render_skipped(repo: str) -> str:
    """`15-staging-log.md` of a repo with nothing to stage: SKIPPED, by code."""
    return (
        "# Staging log\n\nstaging_status: SKIPPED\nfailure_kind: none\n"
        "producer: staging-runner\n\n"
        f"The repo {repo} has no staging command, so there is nothing to stage: skipped by "
        "code, with no agent call. Give it one with `orch repo add ... --staging-command`, "
        "or, to have the LLM deployer stage it, leave it out of ORCH_STAGING_RUNNER_REPOS.\n"
    )


def render_log(
    passed: bool,
    kind: FailureKind,
    argv: list[str],
    proc: ProcResult | None,
    timeout_s: float,
    note: str = "",
    judged: Judged | None = None,
) -> str:
    """`15-staging-log.md`: the verdict key, then what ran and what it printed."""
    heading = [
        "# Staging log",
        "",
        f"staging_status: {'PASSED' if passed else 'FAILED'}",
        f"failure_kind: {kind}",
        "producer: staging-runner",
        *(judged.lines() if judged else []),
    ]
    return command_report(heading, argv, proc, kind, timeout_s, note)
