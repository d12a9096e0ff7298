"""check-runner: a repo's own check stage (`kind = "check"` in its `orch.toml`), run by code.

Runs the stage's command (an argv, never a shell string) in the task worktree with the
stage's timeout, maps its exit code with `map_exit_code_to_status` like every suite, and
writes the stage's report with `check_status:` and the output's tail. FAIL goes where the
stage's `on_fail` says (by default back to development, with this report in the prompt). A
command that could not run (not found, exit 3 or more, killed by a signal) is a tool error:
deferred and retried, then FAILED as infra, never a pass.
"""

from __future__ import annotations

from orchestrator.pipeline.pipelines import CHECK_TIMEOUT_S
from orchestrator.pipeline.stages import Producer, StageSpec
from orchestrator.proc import ProcResult
from orchestrator.redact import redact
from orchestrator.runners.base import (
    FailureKind,
    RunnerOutcome,
    RunnerRequest,
    command_report,
    run_suite,
)


class CheckRunner:
    """Runs a check stage's command and writes its report."""

    producer = Producer.CHECK_RUNNER

    def run(self, request: RunnerRequest) -> RunnerOutcome:
        """Run the check; a verdict or a tool error."""
        spec = _spec(request)
        timeout_s = spec.timeout_s or CHECK_TIMEOUT_S
        run = run_suite(list(spec.command), request, timeout_s)
        if run.cancelled:
            return RunnerOutcome(cancelled=True)
        if not run.executed or run.proc is None:
            return RunnerOutcome.tool_error(run.problem, run.proc)
        kind = run.failure_kind(FailureKind.CHECK)
        text = render_report(spec, run.passed, kind, run.proc, timeout_s)
        return RunnerOutcome(
            artifact=redact(text, request.secrets),
            exit_code=run.proc.exit_code,
            duration_s=run.proc.duration_s,
        )

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The FAILED report once the check could not run `attempts` times."""
        spec = _spec(request)
        note = f"The check could not run in {attempts} attempts; last reason: {reason}"
        return render_report(spec, False, FailureKind.INFRA, None, 0.0, note)


def _spec(request: RunnerRequest) -> StageSpec:
    # The task's own pipeline, as stored when it started: never the branch's orch.toml.
    return request.task.pipeline.spec(request.job.stage)


def render_report(
    spec: StageSpec,
    passed: bool,
    kind: FailureKind,
    proc: ProcResult | None,
    timeout_s: float,
    note: str = "",
) -> str:
    """The check's report: the verdict key, then what ran and the tail of what it printed."""
    heading = [
        f"# Check: {spec.stage}",
        "",
        f"check_status: {'PASS' if passed else 'FAIL'}",
        f"failure_kind: {kind}",
        "producer: check-runner",
    ]
    return command_report(heading, spec.command, proc, kind, timeout_s, note)
