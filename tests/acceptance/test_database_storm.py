"""A worker that outlives database faults: real PostgreSQL with its connections killed.

`orch serve` (API and worker) takes 10 tasks through the pipeline while, every second for
20 seconds, every connection it holds is killed with `pg_terminate_backend`, and for 3 of
those seconds its role may not log in at all (a blackout, so that the outage is long enough
to be seen whatever the machine's speed: a killed idle connection alone is often replaced
before anyone notices). The worker must ride it out: every task ends done, no stage move is
made twice, the process never exits, and `/health` says degraded while it is cut off and ok
after.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, open_store
from tests.acceptance.conftest import Serve
from tests.serve_support import stop

APP_NAME = "orch-storm"
STORM_S = 20.0
BLACKOUT_S = (8.0, 11.0)  # seconds into the storm when the service's role may not log in
TASKS = 10
ROLES = ("analyst", "architect", "developer", "reviewer", "tester")


def killer(admin_url: str, role: str, stopping: threading.Event, killed: list[int]) -> None:
    """Every second, terminate every connection of the service; black out its role a while."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    started = time.monotonic()
    try:
        with engine.connect() as conn:
            while not stopping.wait(1.0):
                elapsed = time.monotonic() - started
                login = "NOLOGIN" if BLACKOUT_S[0] <= elapsed < BLACKOUT_S[1] else "LOGIN"
                conn.execute(text(f'ALTER ROLE "{role}" {login}'))
                rows = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": APP_NAME},
                ).all()
                killed.append(len(rows))
            conn.execute(text(f'ALTER ROLE "{role}" LOGIN'))
    finally:
        engine.dispose()


@pytest.fixture
def storm_role(pg_url: str) -> Iterator[str]:
    """A login role of its own for the service, so that it alone can be locked out."""
    role = f"orch_storm_{uuid.uuid4().hex[:8]}"
    admin = make_url(pg_url).set(query={}).render_as_string(hide_password=False)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" SUPERUSER LOGIN'))
    try:
        yield role
    finally:
        with engine.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role},
            )
            conn.execute(text(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER'))
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        engine.dispose()


def watch_health(base_url: str, stopping: threading.Event, seen: list[tuple[float, int]]) -> None:
    while not stopping.wait(0.1):
        try:
            seen.append((time.monotonic(), httpx.get(f"{base_url}/health", timeout=2).status_code))
        except httpx.TransportError:
            seen.append((time.monotonic(), 0))


@pytest.mark.pg
def test_the_worker_rides_out_a_storm_of_killed_connections(
    pg_url: str,
    storm_role: str,
    serve: Serve,
    make_repo: Callable[..., Path],
    orch_home: Path,
    tmp_path: Path,
) -> None:
    url = make_url(pg_url)
    service_url = url.set(username=storm_role).update_query_dict({"application_name": APP_NAME})
    service_db = service_url.render_as_string(hide_password=False)
    store = open_store(load_settings(db_url=pg_url))
    skipped = frozenset({Stage.DEPLOY_STAGING, Stage.DEPLOY, Stage.POST_DEPLOY})
    repo = make_repo("app")
    store.add_repo("app", RepoSpec(path=str(repo), default_branch="main", skip_stages=skipped))
    scenario = tmp_path / "scenario.toml"
    scenario.write_text("".join(f'[[steps]]\nrole = "{r}"\nsleep = 0.8\n\n' for r in ROLES))
    process, base_url = serve(
        env={
            "ORCH_DB_URL": service_db,
            "ORCH_AGENT_BACKEND": "scripted",
            "ORCH_AGENT_SCENARIO": str(scenario),
            "ORCH_TEST_RUNNER_ENABLED": "false",  # the scripted tester: the storm is the point
            "ORCH_MAX_PARALLEL_JOBS": "4",
            "ORCH_LEASE_S": "6",
            "ORCH_DEFER_BACKOFF_S": "0.2",
        }
    )
    tasks = [submit_task(store, orch_home, "app", f"Task {n}", "").id for n in range(TASKS)]

    stopping = threading.Event()
    killed: list[int] = []
    health: list[tuple[float, int]] = []
    admin = url.set(query={}).render_as_string(hide_password=False)
    threads = [
        threading.Thread(target=killer, args=(admin, storm_role, stopping, killed), daemon=True),
        threading.Thread(target=watch_health, args=(base_url, stopping, health), daemon=True),
    ]
    for thread in threads:
        thread.start()
    storm_started = time.monotonic()
    time.sleep(STORM_S)
    stopping.set()
    for thread in threads:
        thread.join(timeout=10)
    assert sum(killed) > 0, "the storm killed no connection: it tested nothing"

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = {store.get_task(t).state for t in tasks}
        if states <= {"done", "blocked", "cancelled"}:
            break
        assert process.poll() is None, "orch serve exited during the storm"
        time.sleep(0.5)
    after = httpx.get(f"{base_url}/health", timeout=5)

    try:
        assert [store.get_task(t).state for t in tasks] == ["done"] * TASKS
        for task in tasks:
            moves = collections.Counter(
                (e.from_stage, e.to_stage, e.round) for e in store.events(task)
            )
            assert max(moves.values()) == 1, f"task {task} moved twice: {moves}"
        blackout = (storm_started + BLACKOUT_S[0], storm_started + BLACKOUT_S[1] + 1.0)
        during = [code for at, code in health if blackout[0] <= at <= blackout[1]]
        assert 503 in during, f"/health never said degraded while cut off: {during}"
        assert after.status_code == 200 and after.json()["status"] == "ok", after.text
        assert process.poll() is None
    finally:
        store.close()
    assert stop(process) == 0
