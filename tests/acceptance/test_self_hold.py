"""One holder of the self repo: of several `orch serve` processes on one database, only the
one that holds it settles self deploys at boot and runs them; the others serve and run
ordinary jobs, and never touch a self deploy in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update

from orchestrator.pipeline.stages import Stage
from orchestrator.runners.deploy_finalizer import merge_branch
from orchestrator.settings import load_settings
from orchestrator.store import NewTask, RepoSpec, open_store
from orchestrator.store.schema import jobs, tasks
from tests.acceptance.conftest import Serve
from tests.helpers import git
from tests.serve_support import stop

TASK = "k3m9qz2a"
BRANCH = f"orch/{TASK}"


def test_a_second_serve_leaves_a_self_deploy_in_flight_to_the_holder(
    db_url: str, serve: Serve, make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    repo = make_repo("self", files={"app.py": "VERSION = 1\n"})
    git(repo, "checkout", "-q", "-b", BRANCH)
    (repo / "app.py").write_text("VERSION = 2\n")
    git(repo, "commit", "-q", "-am", "the change")
    git(repo, "checkout", "-q", "main")
    store = open_store(load_settings())
    store.add_repo("self", RepoSpec(path=str(repo), default_branch="main", is_self=True))
    first, _ = serve("--no-worker")  # supervised (a self repo is registered): it holds it

    # The first service merges a self deploy and is about to restart on it.
    store.create_task(NewTask(TASK, store.get_repo("self").id, "t", "", BRANCH, str(repo)), "x")
    with store.engine.begin() as conn:
        conn.execute(update(tasks).where(tasks.c.id == TASK).values(stage=Stage.DEPLOY))
        conn.execute(update(jobs).where(jobs.c.task_id == TASK).values(stage=Stage.DEPLOY))
    [job] = store.claim_jobs("serve-1", "here", 1, 600.0, self_deploy=True)

    def record(base: str, merged: str) -> None:
        store.record_self_deploy(job, base, merged)

    merged = merge_branch(repo, BRANCH, "main", "Merge", before_move=record).merged

    second, _ = serve()
    time.sleep(3.0)  # its start-up, boot and first heartbeats are over
    try:
        [deploy] = store.self_deploys()
        assert deploy.state == "pending", deploy.reason
        assert git(repo, "rev-parse", "main").strip() == merged  # nothing reverted
        assert (repo / "app.py").read_text() == "VERSION = 2\n"
    finally:
        store.close()
        assert stop(second) == 0
        assert stop(first) == 0
    said = [log.read_text() for log in tmp_path.glob("serve-*.log")]
    assert sum("holds the self repo" in text for text in said) == 1, said
