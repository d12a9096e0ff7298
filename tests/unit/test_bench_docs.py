"""docs/benchmarks.md names every benchmark and only the options each one takes (drift)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.docs_checks import ROOT, benchmark_table_problems

BENCH = ROOT / "bench"
DOC = (ROOT / "docs" / "benchmarks.md").read_text("utf-8")


def test_benchmarks_doc_drift_lists_every_benchmark_with_its_real_options() -> None:
    assert benchmark_table_problems(DOC, BENCH) == []


def test_benchmarks_doc_drift_caught_when_the_doc_changes_alone() -> None:
    without_scaleout = "\n".join(
        line for line in DOC.splitlines() if not line.startswith("| `bench/scaleout.py")
    )
    assert benchmark_table_problems(without_scaleout, BENCH) == [
        "bench/scaleout.py has no row in the table"
    ]
    wrong_option = DOC.replace("[--stored 100000]", "[--history 100000]")
    assert benchmark_table_problems(wrong_option, BENCH) == [
        "bench/job_latency.py takes no --history"
    ]


def test_benchmarks_doc_drift_caught_when_the_benchmarks_change_alone(tmp_path: Path) -> None:
    copy = tmp_path / "bench"
    shutil.copytree(BENCH, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "memory.py").write_text('if __name__ == "__main__":\n    pass\n')
    (copy / "scaleout.py").unlink()
    assert benchmark_table_problems(DOC, copy) == [
        "bench/memory.py has no row in the table",
        "the table names bench/scaleout.py, which does not exist",
    ]
