"""Job latency and throughput of the scheduler, with instant (scripted) agents.

Runs N tasks through analysis, design, development, review and testing with
ORCH_MAX_PARALLEL_JOBS in parallel, in-process, and prints: job end -> the same task's next
job start (p50, p99, the longest), stage transitions per second, the database round trips
of a transition, and memory. The staging, deploy and post-deploy stages are switched off:
they sit behind the per-repo serial gate, whose waits are by design, not scheduler latency.
With --stored N, N finished tasks (with their jobs and events) are in the database first:
the cost of a transition must not grow with the history an installation keeps.

A job's end is its `finished_at`, stamped as its verdict's transaction begins to write; the
next job's start is when the worker begins to run it (`launch_job`), after the transaction
that claimed it committed: the claim's own timestamp would leave out that commit, now that
a verdict's transaction claims the next job itself.

Round trips are counted at the driver: each statement, each commit and each rollback,
whichever thread makes them, divided by the stage transitions of the run. Connection
check-outs are counted apart: they cost no round trip (store/engine.py polls the socket).

Targets (docs/benchmarks.md): PostgreSQL p50 <= 10 ms, p99 <= 30 ms; SQLite p50 <= 5 ms,
p99 <= 20 ms; no hand-off over 1 s; >= 60 transitions/s; memory flat; the same cost per
transition at 200 and at 100,000 stored tasks.

    .venv/bin/python bench/job_latency.py --tasks 200 --parallel 8 [--stored 100000]
        [--db-url URL of a PostgreSQL server]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from common import make_repo, percentile, scratch_database
from history import store_tasks
from sqlalchemy import Engine, event

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage
from orchestrator.scheduler import Worker
from orchestrator.scheduler import worker as worker_module
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store


@dataclass(frozen=True)
class Figures:
    """What one run measured."""

    store: str
    tasks: int
    states: dict[str, int]
    wall_s: float
    transitions: int
    gaps_s: list[float]  # job end -> the same task's next job start
    longest: list[tuple[float, str]]  # the longest hand-offs, and between which jobs
    round_trips: Counter[str]
    cpu_s: dict[str, float]  # CPU seconds spent during the run: worker, children, database
    rss_before: int
    rss_after: int

    @property
    def per_second(self) -> float:
        return self.transitions / self.wall_s

    def gap_ms(self, q: float) -> float:
        return percentile(self.gaps_s, q) * 1000


class RoundTrips:
    """Counts what goes to the database server (statements, commits and rollbacks) and the
    connection check-outs."""

    def __init__(self, engine: Engine) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._end("commit"))
        event.listen(engine, "rollback", self._end("rollback"))
        event.listen(engine.pool, "checkout", self._checkout)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _statement(self, *args: Any) -> None:
        self._count("statement")

    def _end(self, kind: str) -> Any:
        return lambda *args: self._count(kind)

    def _checkout(self, *args: Any) -> None:
        self._count("checkout")


class Launches:
    """When the worker began to run each job (`launch_job` entered), by job id."""

    def __init__(self) -> None:
        self.at: dict[int, datetime] = {}
        self._real = worker_module.launch_job

    def __enter__(self) -> Launches:
        def launch(context: Any, job: Any) -> Any:
            self.at[job.id] = datetime.now(UTC)
            return self._real(context, job)

        worker_module.launch_job = launch  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        worker_module.launch_job = self._real


def _server_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL server process on this machine, by pid."""
    spent = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if proc.info["name"] in ("postgres", "postgres.exe") and times is not None:
            spent[proc.pid] = times.user + times.system
    return spent


class CpuClock:
    """The CPU spent from its making to `spent()`, apart: this process (the worker), its
    child processes (agents and git, once reaped) and the PostgreSQL server's processes
    (a local server only; backends that ended during the run are not counted)."""

    def __init__(self) -> None:
        self._own = psutil.Process().cpu_times()
        self._server = _server_cpu()

    def spent(self) -> dict[str, float]:
        own = psutil.Process().cpu_times()
        server = _server_cpu()
        return {
            "worker": own.user + own.system - self._own.user - self._own.system,
            "children": own.children_user
            + own.children_system
            - self._own.children_user
            - self._own.children_system,
            "database": sum(s - self._server.get(pid, 0.0) for pid, s in server.items()),
        }


def measure(
    tasks: int, parallel: int, stored: int = 0, db_url: str | None = None, root: Path | None = None
) -> Figures:
    """Drain `tasks` tasks with one in-process worker and measure it (`db_url`: a PostgreSQL
    server, where a scratch database is made; None: SQLite)."""
    with ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-bench-")))
        url = stack.enter_context(scratch_database(db_url)) if db_url else None
        settings = load_settings(
            home=root / "home",
            db_url=url,
            agent_backend="scripted",
            max_parallel_jobs=parallel,
            test_runner_enabled=False,
            staging_runner_enabled=False,
        )
        store = open_store(settings)
        if stored:
            store_tasks(store, stored, active=0, repo_name="history")
        skipped = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})
        store.add_repo(
            "bench",
            RepoSpec(
                path=str(make_repo(root / "repo")), default_branch="main", skip_stages=skipped
            ),
        )
        submitted = [
            submit_task(store, settings.home, "bench", f"task {n}", "") for n in range(tasks)
        ]
        rss_before = psutil.Process().memory_info().rss

        counter = RoundTrips(store.engine)
        cpu = CpuClock()
        started = time.monotonic()
        with Launches() as launches:
            Worker(store, settings, drain=True).run()
        wall = time.monotonic() - started
        cpu_s = cpu.spent()
        round_trips = Counter(counter.counts)
        rss_after = psutil.Process().memory_info().rss

        gaps: list[float] = []
        hand_offs: list[tuple[float, str]] = []
        transitions = 0
        for task in submitted:
            jobs = store.task_jobs(task.id)
            for earlier, later in itertools.pairwise(jobs):
                launched = launches.at.get(later.id)
                if earlier.finished_at and launched:
                    gaps.append((launched - earlier.finished_at).total_seconds())
                    hand_offs.append(
                        (gaps[-1], f"task {task.id} {earlier.stage} -> {later.stage}, "
                         f"ended {earlier.finished_at:%H:%M:%S.%f}")
                    )  # fmt: skip
            transitions += sum(1 for e in store.events(task.id) if e.from_stage is not None)
        states = dict(store.counts().by_state)
        store.close()
    return Figures(
        "PostgreSQL" if db_url else "SQLite",
        tasks,
        states,
        wall,
        transitions,
        gaps,
        sorted(hand_offs, reverse=True)[:3],
        round_trips,
        cpu_s,
        rss_before,
        rss_after,
    )


def report(figures: Figures, stored: int, parallel: int) -> None:
    """Print the figures of a run."""
    f = figures
    print(
        f"tasks: {f.tasks} ({f.states}, {stored} stored before), parallel: {parallel}, "
        f"store: {f.store}"
    )
    print(f"wall time: {f.wall_s:.2f} s for {f.transitions} stage transitions")
    print(f"transitions per second: {f.per_second:.1f} (target >= 60)")
    target = "10 / 30" if f.store == "PostgreSQL" else "5 / 20"
    print(
        f"job end -> next job start: p50 {f.gap_ms(0.5):.1f} ms, p99 {f.gap_ms(0.99):.1f} ms, "
        f"longest {max(f.gaps_s) * 1000:.1f} ms (targets p50 / p99: {target} ms, none over 1 s)"
    )
    for gap, where in f.longest:
        print(f"  {gap * 1000:7.1f} ms: {where}")
    trips = f.round_trips
    kinds = ("statement", "commit", "rollback")
    total = sum(trips[k] for k in kinds)
    parts = ", ".join(f"{trips[k] / f.transitions:.1f} {k}s" for k in kinds)
    print(
        f"database round trips per transition: {total / f.transitions:.1f} ({parts}); "
        f"{trips['checkout'] / f.transitions:.1f} connection check-outs"
    )
    cpu = ", ".join(f"{k} {s / f.transitions * 1000:.1f} ms" for k, s in f.cpu_s.items())
    print(f"CPU per transition: {cpu} (the machine has {psutil.cpu_count()} cores)")
    print(
        f"worker memory (RSS): {f.rss_before / 2**20:.0f} MB before, "
        f"{f.rss_after / 2**20:.0f} MB after"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--stored", type=int, default=0, help="finished tasks stored first")
    parser.add_argument(
        "--db-url", default=None, help="PostgreSQL server (a new database there); default: SQLite"
    )
    args = parser.parse_args()
    figures = measure(args.tasks, args.parallel, args.stored, args.db_url)
    report(figures, args.stored, args.parallel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
