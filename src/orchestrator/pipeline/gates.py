"""Gates: pure functions from an artifact's text to a verdict (the README's "The pipeline").

Gates fail closed. A missing artifact, a missing key, an unknown value or a key repeated
with different values is never a pass: it is INVALID, and an explicit failing value is FAILED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from orchestrator.pipeline.stages import STAGE_TRANSITIONS, Stage, StageKind, StageSpec
from orchestrator.pipeline.verdicts import KeyRead, parse_verdict_keys, read_key


class GateStatus(StrEnum):
    """What a gate made of an artifact."""

    PASSED = "passed"
    FAILED = "failed"
    INVALID = "invalid"
    # Not a verdict on the code: the code that would ship is not the code that was tested
    # (the default branch or the task branch moved since), so test it again.
    RETEST = "retest"


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict: its status, the verdict value it read, and a reason for people."""

    status: GateStatus
    verdict: str  # the value read (e.g. "READY", "PASS"), or "INVALID"
    reason: str

    @property
    def passed(self) -> bool:
        """True only for an explicit, well-formed pass."""
        return self.status is GateStatus.PASSED


def _invalid(reason: str) -> GateResult:
    return GateResult(GateStatus.INVALID, "INVALID", reason)


def _single_key_gate(
    text: str | None, key: str, passing: frozenset[str], failing: frozenset[str]
) -> GateResult:
    if text is None:
        return _invalid("the artifact is missing")
    read = read_key(parse_verdict_keys(text), key)
    if read.value is None:
        return _invalid(f"no {key}: line" if read.missing else str(read.problem))
    if read.value in passing:
        return GateResult(GateStatus.PASSED, read.value, f"{key}: {read.value}")
    if read.value in failing:
        return GateResult(GateStatus.FAILED, read.value, f"{key}: {read.value}")
    allowed = " or ".join(sorted(passing | failing))
    return _invalid(f"{key}: unknown value {read.value!r} (expected {allowed})")


def table_gate(spec: StageSpec) -> Callable[[str | None], GateResult]:
    """The gate on a stage's single verdict key, with the words its row of the table gives."""
    key = spec.verdict_keys[0]

    def gate(text: str | None) -> GateResult:
        return _single_key_gate(text, key, spec.pass_values, spec.fail_values)

    gate.__doc__ = f"Gate on `{key}:` (pass: {', '.join(sorted(spec.pass_values))})."
    return gate


check_analysis_status = table_gate(STAGE_TRANSITIONS[Stage.ANALYSIS])
check_design_status = table_gate(STAGE_TRANSITIONS[Stage.DESIGN])
check_dev_status = table_gate(STAGE_TRANSITIONS[Stage.DEVELOPMENT])
check_review_verdict = table_gate(STAGE_TRANSITIONS[Stage.REVIEW])
check_monitor_status = table_gate(STAGE_TRANSITIONS[Stage.POST_DEPLOY])
# SKIPPED passes when the repo has nothing to stage (written by code, never by an LLM).
check_staging_status = table_gate(STAGE_TRANSITIONS[Stage.DEPLOY_STAGING])
_deploy_gate = table_gate(STAGE_TRANSITIONS[Stage.DEPLOY])


def check_deploy_status(text: str | None) -> GateResult:
    """The deploy gate: DEPLOYED passes, FAILED fails, and RETEST sends the task back to
    testing (what would ship is no longer the commit the suites judged)."""
    gate = _deploy_gate(text)
    if gate.verdict == "RETEST":
        return GateResult(GateStatus.RETEST, gate.verdict, gate.reason)
    return gate


def _optional(read: KeyRead) -> tuple[str | None, GateResult | None]:
    """An optional field: its value, or None when absent; a conflict is an INVALID result."""
    if read.missing:
        return None, None
    if read.value is None:
        return None, _invalid(str(read.problem))
    return read.value, None


def _parse_tests_verdict(text: str | None) -> GateResult:
    """Read the three test-report fields: `result:` (required), `status:` and `tests_failed:`.

    PASS only when `result` is PASS and every present optional field agrees (status PASS,
    tests_failed 0); a report that contradicts itself is FAILED, never PASS.
    """
    if text is None:
        return _invalid("the test report is missing")
    keys = parse_verdict_keys(text)
    result = read_key(keys, "result")
    if result.value is None:
        return _invalid("no result: line" if result.missing else str(result.problem))
    if result.value not in ("PASS", "FAIL"):
        return _invalid(f"result: unknown value {result.value!r} (expected PASS or FAIL)")

    status, problem = _optional(read_key(keys, "status"))
    if problem:
        return problem
    if status is not None and status not in ("PASS", "FAIL"):
        return _invalid(f"status: unknown value {status!r} (expected PASS or FAIL)")

    failed_text, problem = _optional(read_key(keys, "tests_failed"))
    if problem:
        return problem
    tests_failed: int | None = None
    if failed_text is not None:
        # ASCII digits only: str.isdigit() also accepts "²" (int() then raises) and "٣".
        if not (failed_text.isascii() and failed_text.isdigit()):
            return _invalid(f"tests_failed: not a count: {failed_text!r}")
        tests_failed = int(failed_text)

    if result.value == "FAIL":
        return GateResult(GateStatus.FAILED, "FAIL", "result: FAIL")
    if status == "FAIL":
        return GateResult(GateStatus.FAILED, "FAIL", "result: PASS contradicted by status: FAIL")
    if tests_failed:
        return GateResult(
            GateStatus.FAILED, "FAIL", f"result: PASS contradicted by tests_failed: {tests_failed}"
        )
    return GateResult(GateStatus.PASSED, "PASS", "result: PASS")


def check_tests_passed(text: str | None) -> GateResult:
    """The testing gate on `13-test-report.md`, for the test-runner and an LLM tester alike."""
    return _parse_tests_verdict(text)


# Every stage of the table has a gate: its single key's, unless it reads more than words.
GATES: Mapping[Stage, Callable[[str | None], GateResult]] = MappingProxyType(
    {
        stage: {Stage.TESTING: check_tests_passed, Stage.DEPLOY: check_deploy_status}.get(
            stage, table_gate(STAGE_TRANSITIONS[stage])
        )
        for stage in STAGE_TRANSITIONS
    }
)


def run_gate(stage: Stage, text: str | None) -> GateResult:
    """Judge a stage's artifact with that stage's gate."""
    return GATES[stage](text)


def gate_of(spec: StageSpec) -> Callable[[str | None], GateResult]:
    """The gate of any stage: a built-in stage's own, or a repo stage's single-key gate."""
    if spec.kind is StageKind.BUILT_IN:
        return GATES[Stage(spec.stage)]
    return table_gate(spec)
