"""The test report's three verdict fields are aligned for every kind of FAIL (SPEC 3).

A PASS reads PASS, PASS, 0. A FAIL reads FAIL, FAIL and a non-zero tests_failed: the failing
test items, or 1 when no item failed (a timeout, a smoke break, infra). docs/runners.md says
why: tests_failed 0 alone means nothing failed.
"""

from __future__ import annotations

import pytest

from orchestrator.pipeline.gates import check_tests_passed
from orchestrator.pipeline.verdicts import parse_verdict_keys
from orchestrator.runners.base import FailureKind
from orchestrator.runners.junit import Counts
from orchestrator.runners.test_runner import render_report

FAILING_KINDS = [kind for kind in FailureKind if kind is not FailureKind.NONE]


def fields(passed: bool, kind: FailureKind, counts: Counts) -> tuple[str, str, str]:
    report = render_report(
        passed=passed,
        kind=kind,
        counts=counts,
        command=["python", "-m", "pytest", "tests"],
        proc=None,
        timeout_s=60.0,
        checks=[],
    )
    assert check_tests_passed(report).passed is passed
    keys = parse_verdict_keys(report)
    return keys["result"][0], keys["status"][0], keys["tests_failed"][0]


@pytest.mark.parametrize("kind", FAILING_KINDS)
def test_a_fail_with_no_failing_test_item_counts_the_run_itself(kind: FailureKind) -> None:
    assert fields(False, kind, Counts(passed=12)) == ("FAIL", "FAIL", "1")


@pytest.mark.parametrize("kind", FAILING_KINDS)
def test_a_fail_counts_its_failing_test_items(kind: FailureKind) -> None:
    assert fields(False, kind, Counts(passed=3, failed=2, errors=1)) == ("FAIL", "FAIL", "3")


def test_a_pass_reads_zero() -> None:
    assert fields(True, FailureKind.NONE, Counts(passed=12, skipped=2)) == ("PASS", "PASS", "0")
