"""test-runner overhead: the same real suite, bare `python -m pytest` vs through the runner.

Generates a repo with a suite of several hundred fast tests (the worst case for per-test
overhead), then runs it alternately bare and through the test-runner (proc_group, the JUnit
XML report, parsing, the report), several times, and prints the ratio of the median wall
times. "Bare" is `python -m pytest` with its output read through a pipe, as a CI job reads
it; the ratio against output thrown away (/dev/null) is printed too. Target (SPEC section
14): at most 1.05.

    .venv/bin/python bench/test_runner_overhead.py [--tests 600] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import make_repo

from orchestrator.intake import submit_task
from orchestrator.proc import CancelToken
from orchestrator.runners.base import RunnerRequest
from orchestrator.runners.test_runner import TestRunner
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store

TEST_FILE = """
import json
import pytest


@pytest.mark.parametrize("n", range({per_file}))
def test_round_trip_{index}(n):
    data = {{"n": n, "items": list(range(n % 50)), "name": "x" * (n % 17)}}
    assert json.loads(json.dumps(data)) == data


def test_sorted_{index}():
    values = [(i * 7919) % 1000 for i in range(2000)]
    assert sorted(values) == sorted(values, reverse=True)[::-1]
"""


def suite_files(tests: int) -> dict[str, str]:
    """A suite of about `tests` fast tests, in files of fifty."""
    files = max(1, tests // 50)
    suite = {
        f"tests/test_part_{index}.py": TEST_FILE.format(per_file=tests // files - 1, index=index)
        for index in range(files)
    }
    return {**suite, ".gitignore": "__pycache__/\n.pytest_cache/\n"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        root = Path(tmp)
        settings = load_settings(home=root / "home", agent_backend="scripted")
        store = open_store(settings)
        store.add_repo(
            "suite",
            RepoSpec(
                path=str(make_repo(root / "suite", suite_files(args.tests))), default_branch="main"
            ),
        )
        task = submit_task(store, settings.home, "suite", "bench", "")
        job = store.task_jobs(task.id)[0]
        worktree = Path(task.worktree)
        runner = TestRunner()

        def through_runner() -> str:
            request = RunnerRequest(
                task=task,
                repo=store.get_repo("suite"),
                job=job,
                settings=settings,
                artifact_path=root / "13-test-report.md",
                log_path=root / "logs" / "run.log",
                cancel=CancelToken(),
                on_start=lambda _started: None,
                marker="bench",
            )
            outcome = runner.run(request)
            request.cancel.close()
            assert outcome.artifact is not None and "result: PASS" in outcome.artifact
            return outcome.artifact

        def bare() -> None:
            command = [sys.executable, "-m", "pytest", "tests"]
            subprocess.run(command, cwd=worktree, capture_output=True, check=True)

        def bare_devnull() -> None:
            command = [sys.executable, "-m", "pytest", "tests"]
            subprocess.run(command, cwd=worktree, stdout=subprocess.DEVNULL, check=True)

        bare()  # warm the page cache and the bytecode cache for both
        report = through_runner()
        bare_times: list[float] = []
        runner_times: list[float] = []
        devnull_times: list[float] = []
        for _ in range(args.rounds):
            for measure, times in (
                (bare, bare_times),
                (through_runner, runner_times),
                (bare_devnull, devnull_times),
            ):
                started = time.perf_counter()
                measure()
                times.append(time.perf_counter() - started)
        store.close()

    counts = next(
        line
        for line in report.splitlines()
        if line.startswith("| ") and "|---" not in line and not line.startswith("| passed")
    )
    bare_median, runner_median = statistics.median(bare_times), statistics.median(runner_times)
    print(f"suite: {args.tests} tests (passed | failed | errors | skipped | duration: {counts})")
    print(
        f"bare python -m pytest: median {bare_median:.3f}s over {args.rounds} runs "
        f"(min {min(bare_times):.3f}s)"
    )
    print(f"through the test-runner: median {runner_median:.3f}s (min {min(runner_times):.3f}s)")
    print(f"ratio of medians: {runner_median / bare_median:.3f} (target <= 1.05)")
    devnull_median = statistics.median(devnull_times)
    print(
        f"(bare with its output thrown away instead: median {devnull_median:.3f}s, "
        f"ratio {runner_median / devnull_median:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
