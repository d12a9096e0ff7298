"""Where the test-runner's counts come from, and its smoke check's wiring, on real pytest
runs in a real task worktree.

SPEC 15 "Test reports": counts are per test item, as pytest's own summary line shows them,
not per subtest. The summary line is read when there is one; the JUnit report (written by the
`orch_junit` plugin) names the failing tests, and gives the counts when pytest printed no
summary line (`-qq`).
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.gates import check_tests_passed
from orchestrator.pipeline.verdicts import parse_verdict_keys
from orchestrator.proc import CancelToken
from orchestrator.runners.base import RunnerOutcome, RunnerRequest
from orchestrator.runners.test_runner import TestRunner
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store
from tests.helpers import sqlite_only, unique_marker

SUITE = """
def test_plain():
    pass


def test_with_subtests(subtests):
    for n in range(3):
        with subtests.test(n=n):
            assert n < 3
"""

RunTests = Callable[..., tuple[RunnerOutcome, RunnerRequest]]


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: the runner reads its records, it never queries the database."""
    return sqlite_only(tmp_path, monkeypatch)


@pytest.fixture
def run_tests(
    store: Store, orch_home: Path, make_repo: Callable[..., Path], tmp_path: Path
) -> Iterator[RunTests]:
    """Run the test-runner once on a task whose repo holds `files`."""
    tokens: list[CancelToken] = []

    def run(
        files: dict[str, str],
        command: str,
        timeout_s: float = 120.0,
        junit_path: str | None = None,
        **settings: object,
    ) -> tuple[RunnerOutcome, RunnerRequest]:
        spec = RepoSpec(path=str(make_repo("app", files)), default_branch="main")
        store.add_repo("app", spec)
        repo = store.update_repo("app", RepoSpec(test_command=command, junit_path=junit_path))
        task = submit_task(store, orch_home, "app", "Count the tests", "")
        tokens.append(CancelToken())
        request = RunnerRequest(
            task=task,
            repo=repo,
            job=store.task_jobs(task.id)[0],
            settings=load_settings(test_runner_timeout_s=timeout_s, kill_grace_s=0.5, **settings),
            artifact_path=tmp_path / "13-test-report.md",
            log_path=tmp_path / "logs" / "1-1-test-runner.log",
            cancel=tokens[-1],
            on_start=lambda started: None,
            marker=unique_marker(),
        )
        request.log_path.parent.mkdir(parents=True, exist_ok=True)
        return TestRunner().run(request), request

    yield run
    for token in tokens:
        token.close()


@pytest.mark.parametrize(
    ("command", "source"),
    [
        pytest.param("python -m pytest tests", "summary line", id="summary-line"),
        pytest.param("python -m pytest -qq tests", "junit", id="no-summary-line"),
    ],
)
def test_an_all_pass_run_counts_test_items_not_subtests(
    run_tests: RunTests, command: str, source: str
) -> None:
    outcome, request = run_tests({"tests/test_a.py": SUITE}, command)

    report = outcome.artifact
    assert report is not None, outcome.reason
    assert check_tests_passed(report).passed
    assert parse_verdict_keys(report)["tests_failed"] == ("0",)
    assert "| 2 | 0 | 0 | 0 |" in report  # two test items; the three subtests are not counted
    assert f"Counts from: {source}." in report
    assert request.log_path.with_suffix(".junit.xml").is_file()  # written on every pytest run


def test_a_failing_run_counts_from_the_summary_line_and_names_failures_from_junit(
    run_tests: RunTests,
) -> None:
    suite = "def test_ok():\n    pass\n\n\ndef test_bad():\n    assert 2 + 2 == 5, 'ARITHMETIC'\n"
    outcome, _ = run_tests({"tests/test_a.py": suite}, "python -m pytest tests")

    report = outcome.artifact
    assert report is not None, outcome.reason
    assert parse_verdict_keys(report)["tests_failed"] == ("1",)
    assert "| 1 | 1 | 0 | 0 |" in report
    assert "Counts from: summary line and JUnit." in report
    assert "- `tests/test_a.py::test_bad`:" in report and "ARITHMETIC" in report


def test_a_suite_that_times_out_is_never_rerun_even_when_its_output_names_the_plugin(
    run_tests: RunTests, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The orchestrator's own tests print the plugin's name. A run killed at its timeout with
    # "orch_junit" in its output once looked like a plugin that failed to load, and the whole
    # suite ran a second time with pytest's own report: twice the timeout.
    starts = tmp_path / "starts.txt"
    suite = (
        "import time\n\n\ndef test_hangs():\n"
        f"    with open({str(starts)!r}, 'a') as out:\n        out.write('start\\n')\n"
        "    print('loading orch_junit, No module named', flush=True)\n"
        "    time.sleep(30)\n"
    )
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # starts in 0.3 s, not 1.5 s
    outcome, _ = run_tests({"tests/test_hang.py": suite}, "python -m pytest -s tests", 3.0)

    report = outcome.artifact
    assert report is not None, outcome.reason
    keys = parse_verdict_keys(report)
    assert (keys["result"], keys["failure_kind"]) == (("FAIL",), ("timeout",))
    assert keys["tests_failed"] == ("1",)  # aligned: a FAIL never says 0
    assert starts.read_text().splitlines() == ["start"]  # the suite ran once


PASSING = {"tests/test_a.py": "def test_a():\n    pass\n"}


class _Api(http.server.BaseHTTPRequestHandler):
    """An API whose /queue lacks its serial_gate block (the contract the smoke check pins)."""

    def do_GET(self) -> None:
        body = b"{}"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_api() -> Iterator[str]:
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def test_the_smoke_check_is_wired_into_the_verdict(run_tests: RunTests, broken_api: str) -> None:
    # ORCH_TEST_RUNNER_SMOKE_URL: a passing suite with a broken service is a FAIL (smoke).
    outcome, _ = run_tests(PASSING, "python -m pytest tests", test_runner_smoke_url=broken_api)
    report = outcome.artifact
    assert report is not None, outcome.reason
    assert not check_tests_passed(report).passed
    assert parse_verdict_keys(report)["failure_kind"] == ("smoke",)
    assert "Smoke check FAILED: /queue has no serial_gate block" in report


def test_an_unreachable_smoke_target_is_a_tool_error_not_a_verdict(run_tests: RunTests) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    outcome, _ = run_tests(PASSING, "python -m pytest tests", test_runner_smoke_url=nowhere)
    assert outcome.artifact is None and "smoke check: cannot reach" in outcome.reason


UNITTEST_SUITE = """
import unittest


class Sums(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(1 + 1, 2)

    def test_also_ok(self):
        pass

    @unittest.skip("not today")
    def test_skipped(self):
        pass

    def test_bad(self):
        self.assertEqual(2 + 2, 5, "ARITHMETIC")

    def test_broken(self):
        raise RuntimeError("BROKEN-FIXTURE")
"""


def test_a_unittest_run_is_counted_and_its_failing_tests_named(run_tests: RunTests) -> None:
    files = {"tests/__init__.py": "", "tests/test_sums.py": UNITTEST_SUITE}
    outcome, _ = run_tests(files, "python -m unittest discover -s tests -t . -v")

    report = outcome.artifact
    assert report is not None, outcome.reason
    assert not check_tests_passed(report).passed
    assert parse_verdict_keys(report)["tests_failed"] == ("2",)
    assert "| 2 | 1 | 1 | 1 |" in report  # passed, failed, errors, skipped
    assert "Counts from: unittest summary." in report
    assert "- `tests.test_sums.Sums.test_bad`:" in report and "ARITHMETIC" in report
    assert "- `tests.test_sums.Sums.test_broken`:" in report and "BROKEN-FIXTURE" in report


def test_an_all_pass_unittest_run_is_counted(run_tests: RunTests) -> None:
    suite = "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n"
    files = {"tests/__init__.py": "", "tests/test_t.py": suite}
    outcome, _ = run_tests(files, "python -m unittest discover -s tests -t .")

    report = outcome.artifact
    assert report is not None, outcome.reason
    assert check_tests_passed(report).passed
    assert "| 1 | 0 | 0 | 0 |" in report and "Counts from: unittest summary." in report


# A test command that is not pytest and writes a JUnit XML report (as Jest, Go or Maven do).
JUNIT_WRITER = """
import pathlib, sys
pathlib.Path("reports").mkdir(exist_ok=True)
pathlib.Path("reports/junit.xml").write_text('''<?xml version="1.0"?>
<testsuites><testsuite name="cart" tests="3" failures="1" time="0.5">
<testcase classname="cart.spec" name="adds an item" time="0.1"/>
<testcase classname="cart.spec" name="sums the total" time="0.1">
<failure message="expected 12 but got 10">stack</failure></testcase>
<testcase classname="cart.spec" name="skips later" time="0"><skipped/></testcase>
</testsuite></testsuites>''')
print("3 specs, 1 failure")
sys.exit(1)
"""


def test_a_repos_own_junit_report_gives_the_counts_and_failing_tests(
    run_tests: RunTests,
) -> None:
    files = {"run_specs.py": JUNIT_WRITER}
    outcome, _ = run_tests(files, "python run_specs.py", junit_path="reports/junit.xml")

    report = outcome.artifact
    assert report is not None, outcome.reason
    assert parse_verdict_keys(report)["tests_failed"] == ("1",)
    assert "| 1 | 1 | 0 | 1 |" in report
    assert "Counts from: the repo's JUnit report reports/junit.xml." in report
    assert "- `cart.spec::sums the total`: expected 12 but got 10" in report


def test_a_junit_report_the_run_did_not_write_is_not_read(run_tests: RunTests) -> None:
    outcome, _ = run_tests({"ok.py": "print('fine')"}, "python ok.py", junit_path="out/j.xml")

    report = outcome.artifact
    assert report is not None, outcome.reason
    assert "The repo's JUnit report out/j.xml is missing or unreadable." in report
    assert "Counts from: none." in report
