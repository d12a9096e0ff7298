"""Counts and failing tests read from the JUnit XML report of a real pytest run."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.runners.junit import Counts, junit_counts, summary_counts
from orchestrator.runners.test_runner import REPORT_PLUGIN, with_junit, with_pytest_junitxml

SUITE = """
import pytest


def test_ok():
    assert 1 + 1 == 2


def test_bad():
    assert 1 == 2


class TestC:
    def test_m(self):
        raise ValueError("nope")


@pytest.fixture
def database():
    raise RuntimeError("no database")


def test_needs_database(database):
    pass


def test_later():
    pytest.skip("not today")


def test_two_lines():
    raise RuntimeError("first line\\nsecond line")


@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n == 1


@pytest.mark.xfail(reason="known bug")
def test_known_bug():
    assert False


@pytest.mark.xfail(reason="known bug")
def test_lucky():
    pass
"""


@dataclass(frozen=True)
class Run:
    counts: Counts | None
    output: str
    returncode: int


@pytest.fixture(scope="module", params=["orch_junit", "pytest --junitxml"])
def suite_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One real pytest run of the small suite, with each of the test-runner's JUnit reports:
    the lean `orch_junit` plugin (the default) and pytest's own (the fallback)."""
    folder = tmp_path_factory.mktemp("suite")
    (folder / "tests").mkdir()
    (folder / "tests" / "test_a.py").write_text(SUITE)
    report = folder / "job.junit.xml"
    base = [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if request.param == "orch_junit":
        argv = with_junit(base, report)
        env["PYTHONPATH"] = str(REPORT_PLUGIN)
    else:
        argv = with_pytest_junitxml(base, report)
    done = subprocess.run(
        argv, cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return Run(junit_counts(report), done.stdout, done.returncode)


def test_real_pytest_run_exits_with_failures(suite_run: Run) -> None:
    assert suite_run.returncode == 1, suite_run.output
    assert suite_run.counts is not None
    assert suite_run.counts.source == "junit"


def test_counts_are_per_test_item(suite_run: Run) -> None:
    counts = suite_run.counts
    assert counts is not None
    # test_ok, test_param[1] and test_lucky (xpassed) pass; test_bad, TestC::test_m,
    # test_two_lines and test_param[2] fail; the fixture error is an error; a skip and an
    # xfail are skipped.
    assert (counts.passed, counts.failed, counts.errors, counts.skipped) == (3, 4, 1, 2)
    assert counts.tests_failed == 5
    assert counts.duration_s is not None and counts.duration_s >= 0


def test_junit_counts_agree_with_pytests_own_summary_line(suite_run: Run) -> None:
    junit, summary = suite_run.counts, summary_counts(suite_run.output)
    assert junit is not None and summary is not None
    assert (junit.passed, junit.failed, junit.errors, junit.skipped) == (
        summary.passed,
        summary.failed,
        summary.errors,
        summary.skipped,
    )


def test_failing_tests_carry_their_node_ids_and_short_messages(suite_run: Run) -> None:
    assert suite_run.counts is not None
    failing = {f.test_id: f.message for f in suite_run.counts.failing}
    assert set(failing) == {
        "tests/test_a.py::test_bad",
        "tests/test_a.py::TestC::test_m",
        "tests/test_a.py::test_needs_database",
        "tests/test_a.py::test_two_lines",
        "tests/test_a.py::test_param[2]",
    }
    assert "assert 1 == 2" in failing["tests/test_a.py::test_bad"]
    assert "ValueError: nope" in failing["tests/test_a.py::TestC::test_m"]
    assert "RuntimeError: no database" in failing["tests/test_a.py::test_needs_database"]
    assert "assert 2 == 1" in failing["tests/test_a.py::test_param[2]"]


def test_a_short_message_is_one_line(suite_run: Run) -> None:
    assert suite_run.counts is not None
    for failing in suite_run.counts.failing:
        assert failing.message.strip()
        assert "\n" not in failing.message and "\r" not in failing.message
        assert len(failing.message) <= 300
    (two_lines,) = (
        f.message for f in suite_run.counts.failing if f.test_id.endswith("test_two_lines")
    )
    assert "first line" in two_lines and "second line" not in two_lines


def test_passing_and_skipped_tests_are_not_listed_as_failing(suite_run: Run) -> None:
    assert suite_run.counts is not None
    ids = {f.test_id for f in suite_run.counts.failing}
    assert not ids & {"tests/test_a.py::test_ok", "tests/test_a.py::test_later"}
    assert not ids & {"tests/test_a.py::test_known_bug", "tests/test_a.py::test_lucky"}
    assert "tests/test_a.py::test_param[1]" not in ids


def test_a_long_message_is_shortened(tmp_path: Path) -> None:
    report = tmp_path / "long.xml"
    message = "x" * 1000
    report.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1" '
        'failures="1" errors="0" skipped="0" time="0.1"><testcase classname="tests.test_a" '
        f'name="test_long" file="tests/test_a.py" time="0.1"><failure message="{message}">'
        "trace</failure></testcase></testsuite></testsuites>"
    )
    counts = junit_counts(report)
    assert counts is not None
    ((test_id, shown),) = ((f.test_id, f.message) for f in counts.failing)
    assert test_id == "tests/test_a.py::test_long"
    assert len(shown) <= 300 and shown.startswith("xxx")


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not xml at all",
        '<?xml version="1.0"?><testsuites><testsuite name="pytest"><testcase name="t"',
        "\x00\x01\x02",
        "<html><body>502 Bad Gateway</body></html>",
    ],
    ids=["empty", "text", "truncated", "binary", "not-junit"],
)
def test_a_corrupt_report_gives_no_counts(tmp_path: Path, content: str) -> None:
    report = tmp_path / "job.junit.xml"
    report.write_text(content)
    assert junit_counts(report) is None


def test_a_missing_report_gives_no_counts(tmp_path: Path) -> None:
    assert junit_counts(tmp_path / "never-written.xml") is None
    assert junit_counts(tmp_path) is None  # a folder is not a report
