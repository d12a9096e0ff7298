"""Scale-out on PostgreSQL: the same tasks on 1 and on 4 `orch worker` processes.

Creates a database of its own on the PostgreSQL server, registers a repo, and runs the same
N tasks (analysis to testing; agents that sleep 0.2 s) twice: with one worker, then with four,
each worker running `--parallel` jobs at once. Prints the throughput of each, the ratio
(target >= 3.5x), and the double claims: agent runs of one task's stage and round beyond the
first (target 0).

    .venv/bin/python bench/scaleout.py [--tasks 100] [--parallel 2]
        [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import make_repo, scratch_database
from sqlalchemy import func, select

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store
from orchestrator.store.schema import agent_calls, tasks

AGENT = """import os, sys, time
from pathlib import Path
sys.stdin.read()
time.sleep(0.2)
verdicts = {"analyst": "analysis_status: READY", "architect": "design_status: READY",
            "developer": "dev_status: DONE", "reviewer": "review_verdict: APPROVED",
            "tester": "result: PASS"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(verdicts[os.environ["ORCH_ROLE"]] + "\\n")
"""
SKIPPED = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})


def run(workers: int, args: argparse.Namespace, url: str, root: Path) -> tuple[float, int]:
    """Submit the tasks, drain them with `workers` processes; (seconds, double claims)."""
    home = root / f"home-{workers}"
    settings = load_settings(home=home, db_url=url)
    store = open_store(settings)
    name = f"bench{workers}"
    store.add_repo(
        name, RepoSpec(path=str(make_repo(root / name)), default_branch="main", skip_stages=SKIPPED)
    )
    ids = [submit_task(store, home, name, f"task {n}", "").id for n in range(args.tasks)]
    agent = root / "agent.py"
    env = {
        **os.environ,
        "ORCH_HOME": str(home),
        "ORCH_DB_URL": url,
        "ORCH_AGENT_BACKEND": "command",
        "ORCH_AGENT_COMMAND": f"{sys.executable} {agent}",
        "ORCH_TEST_RUNNER_ENABLED": "false",
        "ORCH_MAX_PARALLEL_JOBS": str(args.parallel),
    }
    orch = str(Path(sys.executable).with_name("orch"))
    started = time.monotonic()
    processes = [
        subprocess.Popen([orch, "worker", "--drain"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker exited {process.returncode}")
    elapsed = time.monotonic() - started
    per_attempt = (
        select(agent_calls.c.task_id, agent_calls.c.stage, agent_calls.c.round, func.count())
        .where(agent_calls.c.task_id.in_(ids))
        .group_by(agent_calls.c.task_id, agent_calls.c.stage, agent_calls.c.round)
    )
    with store.engine.connect() as conn:
        doubles = sum(count - 1 for *_, count in conn.execute(per_attempt))
    # Only this run's tasks: the database also holds the tasks of the runs before it.
    ended_done = (
        select(func.count())
        .select_from(tasks)
        .where(tasks.c.id.in_(ids), tasks.c.state == TaskState.DONE)
    )
    with store.engine.connect() as conn:
        done = conn.execute(ended_done).scalar_one()
    store.close()
    if done < args.tasks:
        raise SystemExit(f"only {done} of {args.tasks} tasks ended done")
    return elapsed, doubles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=2, help="jobs at once per worker")
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "ORCH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()

    with scratch_database(args.pg) as url, tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        root = Path(tmp)
        (root / "agent.py").write_text(AGENT)
        one, one_doubles = run(1, args, url, root)
        four, four_doubles = run(4, args, url, root)

    jobs = args.tasks * 5
    print(f"{args.tasks} tasks ({jobs} jobs, agents sleep 0.2 s), {args.parallel} jobs per worker")
    print(f"1 worker:  {one:6.1f} s  {jobs / one:5.1f} jobs/s")
    print(f"4 workers: {four:6.1f} s  {jobs / four:5.1f} jobs/s")
    print(f"ratio: {one / four:.2f}x (target >= 3.5x)")
    print(f"double claims: {one_doubles + four_doubles} (target 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
