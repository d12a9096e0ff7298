"""The merge queue: N tasks on one repo, concurrently, against the same tasks one at a time.

Each task adds a module and its test (independent changes, no conflict); agents are instant
command agents and the suite takes about `--suite-s` seconds (a sleeping test). Concurrently,
each task is tested on top of the older ones that will merge before it (speculative
testing), and re-tested only when what it was tested behind did not land as it was; one at
a time, nothing moves under anyone. Prints the wall time of
each, the test-runner runs per task, and whether the default branch was green at every
first-parent commit (each is checked out and its suite run).

    .venv/bin/python bench/merge_queue.py [--tasks 10] [--suite-s 2] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import GIT_IDENTITY, make_repo

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store

AGENT = """import os, sys
from pathlib import Path
prompt = sys.stdin.read()
role = os.environ["ORCH_ROLE"]
if role == "developer":
    name = "m" + os.environ["ORCH_TASK_ID"]
    Path(f"{name}.py").write_text("VALUE = 1\\n")
    Path(f"tests/test_{name}.py").write_text(
        f"import {name}\\n\\n\\ndef test_{name}():\\n    assert {name}.VALUE == 1\\n"
    )
verdicts = {"analyst": "analysis_status: READY", "developer": "dev_status: DONE"}
Path(os.environ["ORCH_ARTIFACT_PATH"]).write_text(verdicts[role] + "\\n")
"""
SKIPPED = frozenset({Stage.DESIGN, Stage.REVIEW, Stage.DEPLOY_STAGING, Stage.POST_DEPLOY})


def suite(seconds: float) -> dict[str, str]:
    """A repo whose suite takes about `seconds`."""
    return {
        "tests/test_slow.py": f"import time\n\n\ndef test_slow():\n    time.sleep({seconds})\n",
        ".gitignore": "__pycache__/\n",
    }


def run(args: argparse.Namespace, root: Path, together: bool) -> tuple[float, list[int], bool]:
    """All tasks submitted at once and drained with `--parallel` jobs, or each submitted
    and drained alone in turn: (seconds, test runs per task, main green at every merge)."""
    mode = "together" if together else "alone"
    home = root / f"home-{mode}"
    settings = load_settings(home=home, db_url=f"sqlite:///{root / f'orch-{mode}.db'}")
    store = open_store(settings)
    repo = make_repo(root / f"repo-{mode}", suite(args.suite_s))
    store.add_repo("app", RepoSpec(path=str(repo), default_branch="main", skip_stages=SKIPPED))
    parallel = args.parallel if together else 1
    env = {
        **os.environ,
        **GIT_IDENTITY,
        "ORCH_HOME": str(home),
        "ORCH_DB_URL": settings.database_url,
        "ORCH_AGENT_BACKEND": "command",
        "ORCH_AGENT_COMMAND": f"{sys.executable} {root / 'agent.py'}",
        "ORCH_MAX_PARALLEL_JOBS": str(parallel),
        "ORCH_MAX_RETESTS": "100",
    }
    drain = [sys.executable, "-m", "orchestrator", "worker", "--drain"]
    ids: list[str] = []
    started = time.perf_counter()
    for batch in [range(args.tasks)] if together else [[n] for n in range(args.tasks)]:
        ids += [submit_task(store, home, "app", f"task {n}", "").id for n in batch]
        subprocess.run(drain, env=env, check=True)
    seconds = time.perf_counter() - started
    runs = [sum(1 for e in store.events(task) if e.producer == "test-runner") for task in ids]
    states = {store.get_task(task).state for task in ids}
    store.close()
    if states != {"done"}:
        raise SystemExit(f"not every task ended done: {sorted(states)}")
    return seconds, runs, green_at_every_merge(repo, root / f"check-{mode}")


def green_at_every_merge(repo: Path, scratch: Path) -> bool:
    """Check out every first-parent commit of main and run its suite."""
    listing = subprocess.run(
        ["git", "rev-list", "--first-parent", "main"], cwd=repo, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    for index, commit in enumerate(listing.stdout.split()):
        tree = scratch / str(index)
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(tree), commit], cwd=repo, check=True
        )
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=tree,
            capture_output=True,
            check=False,
        )
        if tests.returncode != 0:
            print(f"main is red at {commit[:12]}")
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--suite-s", type=float, default=2.0)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch-bench-merge-") as folder:
        root = Path(folder)
        (root / "agent.py").write_text(AGENT)
        together, runs, green = run(args, root, together=True)
        alone, alone_runs, alone_green = run(args, root, together=False)
    print(f"{args.tasks} tasks on one repo, a {args.suite_s:g}s suite, instant agents")
    print(f"  concurrently ({args.parallel} jobs): {together:.1f}s, test runs per task {runs}")
    print(f"  one at a time:           {alone:.1f}s, test runs per task {alone_runs}")
    print(f"  ratio one at a time / concurrently: {alone / together:.2f}x")
    print(f"  main green at every merge: concurrently {green}, one at a time {alone_green}")


if __name__ == "__main__":
    main()
