"""The anchor: a bare PostgreSQL job queue's hand-off next to ours, same server, same run.

procrastinate (the optional `bench` extra) runs a chain of jobs where each job defers the
next; the hand-off is the time from one job's end to the next job's start, on one worker
with listen/notify, and its throughput is no-op jobs per second. Then bench/job_latency.py
runs orchestrator's tasks on a scratch database of the same server, and the ratios print.

A stage hand-off does more than a queue's (the artifact, the gate, the move, the claim), so
the ratio says how much more, not whether the two are alike.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/anchor.py --db-url postgresql+psycopg://postgres@127.0.0.1/postgres
        [--hops 500] [--jobs 2000] [--tasks 200] [--parallel 8]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from common import percentile, scratch_database
from job_latency import measure, report
from sqlalchemy.engine import make_url


async def procrastinate_hand_offs(conninfo: str, hops: int) -> list[float]:
    """A chain of `hops` jobs, each deferring the next: the end -> start gaps, in seconds."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}

    @app.task(queue="anchor", name="hop")
    async def hop(n: int) -> None:
        starts[n] = time.perf_counter()
        if n + 1 < hops:
            await hop.defer_async(n=n + 1)
        ends[n] = time.perf_counter()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        await hop.defer_async(n=0)
        await app.run_worker_async(
            queues=["anchor"], concurrency=1, wait=False, install_signal_handlers=False
        )
    return [starts[n + 1] - ends[n] for n in range(hops - 1)]


async def procrastinate_throughput(conninfo: str, jobs: int) -> float:
    """No-op jobs per second through one worker, all deferred first."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(queue="noop", name="noop")
    async def noop() -> None:
        return None

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for _ in range(jobs):
            await noop.defer_async()
        started = time.perf_counter()
        await app.run_worker_async(
            queues=["noop"], concurrency=1, wait=False, install_signal_handlers=False
        )
        return jobs / (time.perf_counter() - started)


def libpq(url: str) -> str:
    """A SQLAlchemy URL as the libpq connection string procrastinate takes."""
    parsed = make_url(url)
    parts = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    return " ".join(f"{key}={value}" for key, value in parts.items() if value is not None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True, help="a PostgreSQL server (scratch databases)")
    parser.add_argument("--hops", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args()
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        print("error: procrastinate is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return 2

    # It warns that its app lives in a script's main module: true here, and harmless.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    with scratch_database(args.db_url) as url:
        gaps = asyncio.run(procrastinate_hand_offs(libpq(url), args.hops))
    with scratch_database(args.db_url) as url:
        per_second = asyncio.run(procrastinate_throughput(libpq(url), args.jobs))
    # Like for like first: one job at a time, as the chain runs; then the load asked for.
    runs = [(1, measure(max(1, args.tasks // 4), 1, db_url=args.db_url))]
    runs.append((args.parallel, measure(args.tasks, args.parallel, db_url=args.db_url)))

    theirs_p50, theirs_p99 = percentile(gaps, 0.5) * 1000, percentile(gaps, 0.99) * 1000
    print(
        f"procrastinate: job end -> next job start p50 {theirs_p50:.1f} ms, "
        f"p99 {theirs_p99:.1f} ms ({args.hops} hops, one worker); "
        f"{per_second:.0f} no-op jobs/s ({args.jobs} jobs, one worker)"
    )
    for parallel, ours in runs:
        print()
        report(ours, 0, parallel)
        print(
            f"ratio (orchestrator at {parallel} parallel / procrastinate): "
            f"p50 {ours.gap_ms(0.5) / theirs_p50:.1f}x, p99 {ours.gap_ms(0.99) / theirs_p99:.1f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
