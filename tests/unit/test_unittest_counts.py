"""unittest's own summary, read into counts and failing tests (runners/junit.py)."""

from __future__ import annotations

from orchestrator.runners.junit import Failing, unittest_counts

RULE, DASH = "=" * 70, "-" * 70
OUTPUT = f"""test_a (t.T.test_a) ... ok
test_b (t.T.test_b) ... FAIL
test_c (t.T.test_c) ... ERROR
{RULE}
FAIL: test_b (t.T)
{DASH}
Traceback (most recent call last):
  File "t.py", line 6, in test_b
    self.assertEqual(1, 2)
AssertionError: 1 != 2

{RULE}
ERROR: test_c (t.T.test_c)
{DASH}
Traceback (most recent call last):
  File "t.py", line 9, in test_c
    raise KeyError("k")
KeyError: 'k'

{DASH}
Ran 904 tests in 1.250s

FAILED (failures=1, errors=1, skipped=3, expected failures=1)
"""


def test_counts_and_failing_tests_with_both_id_formats() -> None:
    counts = unittest_counts(OUTPUT)
    assert counts is not None
    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (898, 1, 1, 4)
    assert counts.duration_s == 1.25 and counts.source == "unittest summary"
    assert counts.failing == (
        Failing("t.T.test_b", "AssertionError: 1 != 2"),
        Failing("t.T.test_c", "KeyError: 'k'"),
    )


def test_ok_runs_and_no_summary() -> None:
    ok = unittest_counts(f"{DASH}\nRan 3 tests in 0.001s\n\nOK (skipped=1)\n")
    assert ok is not None and (ok.passed, ok.skipped, ok.tests_failed) == (2, 1, 0)
    assert unittest_counts("no tests here\n") is None
    assert unittest_counts("Ran 3 tests in 0.1s\n") is None  # cut off before its verdict
