"""Gates (SPEC sections 2 and 3): pure functions of an artifact's text that fail closed."""

import pytest

from orchestrator.pipeline.gates import (
    GATES,
    GateStatus,
    _parse_tests_verdict,
    check_staging_status,
    check_tests_passed,
    run_gate,
)
from orchestrator.pipeline.stages import STAGE_TRANSITIONS, Stage

# stage, key, passing values, failing values: the single-key rows of the SPEC section 2 table.
SINGLE_KEY_GATES = [
    (Stage.ANALYSIS, "analysis_status", ["READY"], ["BLOCKED"]),
    (Stage.DESIGN, "design_status", ["READY"], ["BLOCKED"]),
    (Stage.DEVELOPMENT, "dev_status", ["DONE"], ["BLOCKED"]),
    (Stage.REVIEW, "review_verdict", ["APPROVED"], ["CHANGES_REQUESTED"]),
    (Stage.DEPLOY_STAGING, "staging_status", ["PASSED"], ["FAILED"]),
    (Stage.DEPLOY, "deploy_status", ["DEPLOYED"], ["FAILED"]),
    (Stage.POST_DEPLOY, "monitor_status", ["HEALTHY", "SKIPPED"], ["UNHEALTHY"]),
]
PASSING = [(stage, key, value) for stage, key, ok, _ in SINGLE_KEY_GATES for value in ok]
FAILING = [(stage, key, value) for stage, key, _, bad in SINGLE_KEY_GATES for value in bad]
KEYS = [(stage, key) for stage, key, _, _ in SINGLE_KEY_GATES]


def artifact(*lines: str) -> str:
    return "\n".join(["# Artifact", "", "Some prose for people.", "", *lines, ""])


def test_every_stage_has_a_gate_and_a_row_here():
    assert set(GATES) == set(Stage)
    assert {stage for stage, _ in KEYS} | {Stage.TESTING} == set(Stage)


@pytest.mark.parametrize(("stage", "key"), KEYS)
def test_gate_reads_the_verdict_key_of_its_stage(stage, key):
    assert STAGE_TRANSITIONS[stage].verdict_keys == (key,)


@pytest.mark.parametrize(("stage", "key", "value"), PASSING)
def test_passing_value_passes(stage, key, value):
    result = run_gate(stage, artifact(f"{key}: {value}"))
    assert result.status is GateStatus.PASSED
    assert result.passed
    assert result.verdict == value


@pytest.mark.parametrize(("stage", "key", "value"), PASSING)
def test_passing_value_in_any_case_with_spaces_passes(stage, key, value):
    assert run_gate(stage, artifact(f"{key}:   {value.lower()}  ")).verdict == value


@pytest.mark.parametrize(("stage", "key", "value"), FAILING)
def test_failing_value_fails(stage, key, value):
    result = run_gate(stage, artifact(f"{key}: {value}"))
    assert result.status is GateStatus.FAILED
    assert not result.passed
    assert result.verdict == value


@pytest.mark.parametrize("unknown", ["MAYBE", "", "PASS", "YES", "READY!", "ok"])
@pytest.mark.parametrize(("stage", "key"), KEYS)
def test_unknown_value_is_invalid(stage, key, unknown):
    result = run_gate(stage, artifact(f"{key}: {unknown}"))
    assert result.status is GateStatus.INVALID
    assert result.verdict == "INVALID"
    assert "unknown value" in result.reason


@pytest.mark.parametrize(("stage", "key"), KEYS)
def test_missing_key_is_invalid(stage, key):
    result = run_gate(stage, artifact("other_key: READY", f"{key.upper()}: X"))
    assert result.status is GateStatus.INVALID
    assert result.reason == f"no {key}: line"


@pytest.mark.parametrize(("stage", "key", "value"), PASSING)
def test_passing_value_hidden_in_a_fence_or_indented_is_invalid(stage, key, value):
    assert run_gate(stage, artifact("```", f"{key}: {value}", "```")).status is GateStatus.INVALID
    assert run_gate(stage, artifact(f"  {key}: {value}")).status is GateStatus.INVALID


@pytest.mark.parametrize(("stage", "key", "passing", "failing"), SINGLE_KEY_GATES)
def test_conflicting_values_are_invalid(stage, key, passing, failing):
    for other in [*failing, *passing[1:], "MAYBE"]:
        result = run_gate(stage, artifact(f"{key}: {passing[0]}", "notes", f"{key}: {other}"))
        assert result.status is GateStatus.INVALID, other
        assert "conflicting" in result.reason


@pytest.mark.parametrize(("stage", "key", "value"), PASSING + FAILING)
def test_repeated_key_with_the_same_value_counts_once(stage, key, value):
    text = artifact(f"{key}: {value}", "notes", f"{key}: {value.lower()}")
    assert run_gate(stage, text).verdict == value


@pytest.mark.parametrize("stage", list(Stage))
def test_missing_artifact_is_invalid(stage):
    result = run_gate(stage, None)
    assert result.status is GateStatus.INVALID
    assert "missing" in result.reason


# ---------------------------------------------------------------- the testing gate

ALIGNED_PASS = "result: PASS\nstatus: PASS\ntests_failed: 0"


@pytest.mark.parametrize(
    "text",
    [
        "result: PASS",
        "result: PASS\nstatus: PASS",
        "result: PASS\ntests_failed: 0",
        ALIGNED_PASS,
        "tests_failed: 0\r\nstatus: pass\r\nresult: Pass\r\n",
        "producer: test-runner\nresult: PASS\nstatus: PASS\ntests_failed: 0\n\n## 412 passed",
    ],
)
def test_tests_verdict_passes_when_result_and_every_present_field_agree(text):
    result = check_tests_passed(artifact(text))
    assert result.status is GateStatus.PASSED
    assert result.verdict == "PASS"


@pytest.mark.parametrize(
    ("text", "contradiction"),
    [
        ("result: FAIL", "result: FAIL"),
        ("result: FAIL\nstatus: FAIL\ntests_failed: 3", "result: FAIL"),
        ("result: FAIL\nstatus: PASS\ntests_failed: 0", "result: FAIL"),
        ("result: PASS\nstatus: FAIL", "status: FAIL"),
        ("result: PASS\ntests_failed: 2", "tests_failed: 2"),
        ("result: PASS\nstatus: PASS\ntests_failed: 1", "tests_failed: 1"),
        ("result: PASS\nstatus: FAIL\ntests_failed: 0", "status: FAIL"),
    ],
)
def test_tests_verdict_fails_on_fail_or_misaligned_fields(text, contradiction):
    result = check_tests_passed(artifact(text))
    assert result.status is GateStatus.FAILED
    assert result.verdict == "FAIL"
    assert contradiction in result.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("status: PASS\ntests_failed: 0", "no result: line"),
        ("Result: PASS\nstatus: PASS", "no result: line"),
        ("```\nresult: PASS\n```\nstatus: PASS\ntests_failed: 0", "no result: line"),
        ("result: PASSED", "result: unknown value"),
        ("result: OK", "result: unknown value"),
        ("result:", "result: unknown value"),
        ("result: paß", "result: unknown value"),
        ("result: PASS\nstatus: OK", "status: unknown value"),
        ("result: PASS\nstatus: PASSED", "status: unknown value"),
        ("result: PASS\nresult: FAIL", "conflicting"),
        ("result: PASS\nstatus: PASS\nstatus: FAIL", "conflicting"),
        ("result: PASS\ntests_failed: 0\ntests_failed: 1", "conflicting"),
        ("result: FAIL\nstatus: FAIL\nstatus: PASS", "conflicting"),
    ],
)
def test_tests_verdict_is_invalid_without_a_well_formed_result(text, reason):
    result = check_tests_passed(artifact(text))
    assert result.status is GateStatus.INVALID
    assert result.verdict == "INVALID"
    assert reason in result.reason


@pytest.mark.parametrize(
    "count", ["none", "-1", "+0", "1.0", "0x0", "1e3", "1_000", "zero", "", "0 0", "²", "٠", "０"]
)
@pytest.mark.parametrize("result", ["PASS", "FAIL"])
def test_non_integer_tests_failed_is_invalid(result, count):
    verdict = check_tests_passed(artifact(f"result: {result}", f"tests_failed: {count}"))
    assert verdict.status is GateStatus.INVALID
    assert "tests_failed" in verdict.reason


def test_missing_test_report_is_invalid():
    assert check_tests_passed(None).status is GateStatus.INVALID


@pytest.mark.parametrize(
    "text", [None, "", ALIGNED_PASS, "result: FAIL", "result: PASS\ntests_failed: x"]
)
def test_testing_gate_is_the_three_field_parser(text):
    assert check_tests_passed(text) == _parse_tests_verdict(text) == run_gate(Stage.TESTING, text)


# ---------------------------------------------------------------- the staging gate


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("staging_status: PASSED", GateStatus.PASSED),
        ("staging_status: passed  ", GateStatus.PASSED),
        ("staging_status: FAILED", GateStatus.FAILED),
        ("staging_status: PASS", GateStatus.INVALID),
        ("staging_status: OK", GateStatus.INVALID),
        ("staging_status: paſſed", GateStatus.INVALID),
        ("staging_status: PASSED\nstaging_status: FAILED", GateStatus.INVALID),
        ("Staging_Status: PASSED", GateStatus.INVALID),
        (" staging_status: PASSED", GateStatus.INVALID),
        ("~~~\nstaging_status: PASSED\n~~~", GateStatus.INVALID),
        ("result: PASS", GateStatus.INVALID),
        (None, GateStatus.INVALID),
    ],
)
def test_staging_status_is_read_like_every_other_key(text, status):
    assert check_staging_status(text).status is status
    assert run_gate(Stage.DEPLOY_STAGING, text) == check_staging_status(text)
