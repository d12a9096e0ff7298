"""Job latency and throughput of the scheduler, with instant (scripted) agents.

Runs N tasks through analysis, design, development, review and testing with
ORCH_MAX_PARALLEL_JOBS in parallel, in-process, and prints: job end -> the same task's next
job start (p50, p99), stage transitions per second, and memory. The staging, deploy and
post-deploy stages are switched off: they sit behind the per-repo serial gate, whose waits
are by design, not scheduler latency.
With --stored N, N finished tasks (with their jobs and events) are in the database first:
the cost of a transition must not grow with the history an installation keeps.
Targets (SPEC section 14): p50 < 50 ms, p99 < 200 ms, >= 20 transitions/s with 8 parallel,
the same cost per transition at 200 and at 20,000 stored tasks.

    .venv/bin/python bench/job_latency.py --tasks 200 --parallel 8 [--stored 20000]
        [--db-url URL of a PostgreSQL server]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psutil
from common import make_repo, percentile, scratch_database
from history import store_tasks

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage
from orchestrator.scheduler import Worker
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--stored", type=int, default=0, help="finished tasks stored first")
    parser.add_argument(
        "--db-url", default=None, help="PostgreSQL server (a new database there); default: SQLite"
    )
    args = parser.parse_args()

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-bench-")))
        db_url = stack.enter_context(scratch_database(args.db_url)) if args.db_url else None
        settings = load_settings(
            home=root / "home",
            db_url=db_url,
            agent_backend="scripted",
            max_parallel_jobs=args.parallel,
            test_runner_enabled=False,
            staging_runner_enabled=False,
        )
        store = open_store(settings)
        if args.stored:
            store_tasks(store, args.stored, active=0, repo_name="history")
        skipped = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})
        store.add_repo(
            "bench",
            RepoSpec(
                path=str(make_repo(root / "repo")), default_branch="main", skip_stages=skipped
            ),
        )
        tasks = [
            submit_task(store, settings.home, "bench", f"task {n}", "") for n in range(args.tasks)
        ]
        rss_before = psutil.Process().memory_info().rss

        started = time.monotonic()
        Worker(store, settings, drain=True).run()
        wall = time.monotonic() - started
        rss_after = psutil.Process().memory_info().rss

        gaps: list[float] = []
        transitions = 0
        for task in tasks:
            jobs = store.task_jobs(task.id)
            for earlier, later in itertools.pairwise(jobs):
                if earlier.finished_at and later.started_at:
                    gaps.append((later.started_at - earlier.finished_at).total_seconds())
            transitions += sum(1 for e in store.events(task.id) if e.from_stage is not None)
        states = store.counts().by_state
        store.close()

    print(
        f"tasks: {args.tasks} ({states}, {args.stored} stored before), "
        f"parallel: {args.parallel}, "
        f"store: {'PostgreSQL' if args.db_url else 'SQLite'}"
    )
    print(f"wall time: {wall:.2f} s for {transitions} stage transitions")
    print(f"transitions per second: {transitions / wall:.1f} (target >= 20)")
    print(
        f"job end -> next job start: p50 {percentile(gaps, 0.50) * 1000:.1f} ms, "
        f"p99 {percentile(gaps, 0.99) * 1000:.1f} ms, mean {statistics.mean(gaps) * 1000:.1f} ms "
        f"(targets: p50 < 50 ms, p99 < 200 ms)"
    )
    print(
        f"worker memory (RSS): {rss_before / 2**20:.0f} MB before, {rss_after / 2**20:.0f} MB after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
