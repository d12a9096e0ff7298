"""The store on SQLite and PostgreSQL: the same tests, both backends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, func, select, text

from orchestrator.errors import Conflict, NotFound, StoreError
from orchestrator.pipeline.pipelines import BUILT_IN
from orchestrator.pipeline.stages import Producer, Stage, TaskState
from orchestrator.settings import load_settings
from orchestrator.store import NewTask, RepoSpec, Store, open_store
from orchestrator.store.engine import make_engine
from orchestrator.store.migrate import HEAD_REVISION, MIGRATIONS, current_revision, upgrade
from orchestrator.store.schema import artifacts, events, metadata, tasks
from tests.helpers import raise_alert


def add_repo(store: Store, name: str = "app") -> int:
    return store.add_repo(name, RepoSpec(path=f"/srv/{name}", default_branch="main")).id


def new_task(repo_id: int, task_id: str = "abcd2345", title: str = "Add a flag") -> NewTask:
    return NewTask(task_id, repo_id, title, "details", f"orch/{task_id}", f"/wt/{task_id}")


def test_head_revision_constant_is_the_scripts_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_fresh_database_is_migrated_to_head_on_first_use(store: Store) -> None:
    with store.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION


def test_migrated_schema_matches_the_code_metadata(store: Store) -> None:
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    assert differences == []


@contextmanager
def at_revision(db_url: str, revision: str, *, down: bool = False) -> Iterator[Connection]:
    """A connection, in a transaction, to the database migrated up (or `down`) to `revision`
    only; the engine is disposed of after, so that a store opened next upgrades it the usual
    way."""
    engine = make_engine(db_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.connect() as conn, conn.begin():
            config.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(config, revision)
            assert current_revision(conn) == revision
            yield conn
    finally:
        engine.dispose()


def old_task(conn: Connection, task_id: str, state: str, round: int) -> None:
    """A repo `app` and one task of it in testing, written as an older revision's rows."""
    conn.execute(
        text(
            "INSERT INTO repos (id, name, path, default_branch, test_target, created_at) "
            "VALUES (1, 'app', '/srv/app', 'main', 'tests', CURRENT_TIMESTAMP)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO tasks (id, repo_id, title, description, stage, state, round, branch, "
            "worktree, created_at, updated_at) VALUES (:id, 1, 't', '', 'testing', :state, "
            ":round, :branch, '/wt', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {"id": task_id, "state": state, "round": round, "branch": f"orch/{task_id}"},
    )


def test_upgrade_from_the_first_revision_keeps_the_data(db_url: str) -> None:
    with at_revision(db_url, "0001") as conn:
        conn.execute(
            text(
                "INSERT INTO repos (name, path, default_branch, test_target, created_at) "
                "VALUES ('old', '/srv/old', 'main', 'tests', CURRENT_TIMESTAMP)"
            )
        )
    upgraded = open_store(load_settings(db_url=db_url))
    assert upgraded.get_repo("old").path == "/srv/old"
    with upgraded.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    upgraded.close()


def test_upgrade_twice_is_a_no_op(store: Store) -> None:
    assert upgrade(store.engine) == (HEAD_REVISION, HEAD_REVISION)


def test_sqlite_store_runs_in_wal_mode(tmp_path: Path) -> None:
    opened = open_store(load_settings(db_url=f"sqlite:///{tmp_path / 'x.db'}"))
    with opened.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    opened.close()


def test_repo_round_trip_keeps_every_setting(store: Store) -> None:
    spec = RepoSpec(
        path="/srv/app",
        default_branch="trunk",
        test_target="tests/unit",
        test_command="make test",
        staging_command="make staging",
        deploy_command="make deploy",
        health_url="http://127.0.0.1:9/health",
        setup_command="bash setup.sh",
        skip_stages=frozenset({Stage.DESIGN, Stage.POST_DEPLOY}),
        is_self=True,
    )
    added = store.add_repo("app", spec)
    assert store.get_repo("app") == added
    assert added.skip_stages == {Stage.DESIGN, Stage.POST_DEPLOY}
    assert (added.test_target, added.deploy_command, added.is_self) == (
        "tests/unit",
        "make deploy",
        True,
    )


def test_new_repo_defaults_to_pytest_on_tests(store: Store) -> None:
    add_repo(store)
    repo = store.get_repo("app")
    assert (repo.test_target, repo.test_command, repo.skip_stages) == ("tests", None, frozenset())


def test_duplicate_repo_name_is_a_conflict_and_adds_nothing(store: Store) -> None:
    add_repo(store)
    with pytest.raises(Conflict, match="already exists"):
        add_repo(store)
    assert [r.name for r in store.list_repos()] == ["app"]


def test_update_repo_changes_only_given_fields_and_empty_clears(store: Store) -> None:
    store.add_repo("app", RepoSpec(path="/a", default_branch="main", staging_command="x"))
    changed = store.update_repo("app", RepoSpec(deploy_command="make deploy", staging_command=""))
    assert (changed.path, changed.deploy_command, changed.staging_command) == (
        "/a",
        "make deploy",
        None,
    )


def test_unknown_repo_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get_repo("nope")
    with pytest.raises(NotFound):
        store.update_repo("nope", RepoSpec(test_target="t"))


def test_create_task_stores_task_intake_event_and_task_artifact(store: Store) -> None:
    task = store.create_task(new_task(add_repo(store)), "# Add a flag\n")
    assert (task.stage, task.state, task.round, task.repo) == (
        Stage.ANALYSIS,
        TaskState.ACTIVE,
        1,
        "app",
    )
    [event] = store.events(task.id)
    assert (event.from_stage, event.to_stage, event.producer, event.round) == (
        None,
        "analysis",
        Producer.INTAKE,
        1,
    )
    assert store.artifact_names([task.id]) == {task.id: ["01-task.md"]}
    assert store.get_artifact(task.id, "01-task.md").text == "# Add a flag\n"


def test_failed_create_task_leaves_no_partial_rows(store: Store) -> None:
    repo_id = add_repo(store)
    store.create_task(new_task(repo_id), "first")
    with pytest.raises(Conflict):
        store.create_task(new_task(repo_id, title="same id again"), "second")
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tasks)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(artifacts)).scalar() == 1


def test_list_tasks_filters_by_state_stage_and_repo(store: Store) -> None:
    first, second = add_repo(store, "one"), add_repo(store, "two")
    store.create_task(new_task(first, "aaaa2222"), "x")
    store.create_task(new_task(second, "bbbb3333"), "x")
    assert [t.id for t in store.list_tasks()] == ["aaaa2222", "bbbb3333"]
    assert [t.id for t in store.list_tasks(repo="two")] == ["bbbb3333"]
    assert [t.id for t in store.list_tasks(stage=Stage.ANALYSIS, state=TaskState.ACTIVE)] == [
        "aaaa2222",
        "bbbb3333",
    ]
    assert store.list_tasks(state=TaskState.DONE) == []
    assert [t.id for t in store.list_tasks(limit=1, offset=1)] == ["bbbb3333"]


def test_missing_task_and_artifact_are_not_found(store: Store) -> None:
    task = store.create_task(new_task(add_repo(store)), "x")
    with pytest.raises(NotFound):
        store.get_task("zzzz9999")
    with pytest.raises(NotFound, match=r"02-analysis\.md"):
        store.get_artifact(task.id, "02-analysis.md")
    with pytest.raises(NotFound, match="round 2"):
        store.get_artifact(task.id, "01-task.md", round=2)


def test_alerts_are_raised_listed_and_acknowledged_once(store: Store) -> None:
    first = raise_alert(store, "retry_limit", "gave up")
    raise_alert(store, "agent_error", "auth failed")
    assert [a.kind for a in store.list_alerts(open_only=True)] == ["agent_error", "retry_limit"]
    acknowledged = store.acknowledge_alert(first.id)
    assert acknowledged.acknowledged_at is not None
    assert store.acknowledge_alert(first.id).acknowledged_at == acknowledged.acknowledged_at
    assert [a.kind for a in store.list_alerts(open_only=True)] == ["agent_error"]
    with pytest.raises(NotFound):
        store.acknowledge_alert(999)


def test_concurrent_writers_all_commit(store: Store) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(15):
                raise_alert(store, "load", f"writer {n} alert {i}")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list_alerts()) == 90


def test_unreachable_database_is_a_store_error() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(StoreError, match="database unavailable"):
        open_store(load_settings(db_url=url))


def test_unwritable_sqlite_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises((StoreError, OSError)):
        open_store(load_settings(db_url=f"sqlite:///{blocker / 'orch.db'}"))


def test_upgrade_to_0010_moves_the_unfinished_command_out_of_the_note(db_url: str) -> None:
    rows = [
        (1, "The service stopped before the deploy command finished."),  # the old sentinel
        (2, "Deploy command: `make install`, exit 0."),  # the command finished
    ]
    with at_revision(db_url, "0009") as conn:
        conn.execute(
            text(
                "INSERT INTO repos (id, name, path, default_branch, test_target, created_at) "
                "VALUES (1, 'self', '/srv/self', 'main', 'tests', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tasks (id, repo_id, title, description, stage, state, round, "
                "branch, worktree, created_at, updated_at) VALUES ('aaaa2222', 1, 't', '', "
                "'deploy', 'active', 1, 'orch/aaaa2222', '/wt', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO jobs (id, task_id, stage, round, status, attempt, created_at) "
                "VALUES (1, 'aaaa2222', 'deploy', 1, 'running', 1, CURRENT_TIMESTAMP)"
            )
        )
        for deploy_id, note in rows:
            conn.execute(
                text(
                    "INSERT INTO self_deploys (id, task_id, job_id, attempt, merged_commit, "
                    "note, state, created_at) VALUES (:id, 'aaaa2222', 1, 1, 'abc', :note, "
                    "'pending', CURRENT_TIMESTAMP)"
                ),
                {"id": deploy_id, "note": note},
            )
    upgraded = open_store(load_settings(db_url=db_url))
    try:
        unfinished, finished = upgraded.self_deploys()
        assert (unfinished.command_running, unfinished.note) == (True, "")
        assert (finished.command_running, finished.note) == (False, rows[1][1])
    finally:
        upgraded.close()


def test_upgrades_from_0012_give_tasks_budget_round_one_and_the_built_in_pipeline(
    db_url: str,
) -> None:
    # A task with a job that references it: on SQLite, copying and dropping `tasks` (batch
    # mode) is refused by that foreign key, so each column (0013, 0014) is added in place;
    # both go back down as well.
    with at_revision(db_url, "0012") as conn:
        old_task(conn, "aaaa3333", "failed", 4)
        conn.execute(
            text(
                "INSERT INTO jobs (id, task_id, stage, round, status, attempt, created_at) "
                "VALUES (1, 'aaaa3333', 'testing', 4, 'done', 1, CURRENT_TIMESTAMP)"
            )
        )
    upgraded = open_store(load_settings(db_url=db_url))
    try:
        task = upgraded.get_task("aaaa3333")
        assert (task.budget_round, task.pipeline, task.stage) == (1, BUILT_IN, Stage.TESTING)
    finally:
        upgraded.engine.dispose()
    with at_revision(db_url, "0012", down=True) as conn:
        assert conn.execute(text("SELECT round FROM tasks")).scalar_one() == 4


def test_a_job_reads_its_task_and_every_field_of_its_repo_in_one_query(store: Store) -> None:
    store.add_repo(
        "app",
        RepoSpec(
            path="/srv/app",
            default_branch="trunk",
            test_command="make check",
            skip_stages=frozenset({Stage.DEPLOY}),
            setup_command="make venv",
            junit_path="out/junit.xml",
        ),
    )
    repo = store.get_repo("app")
    store.create_task(NewTask("aaaa0001", repo.id, "t", "", "orch/aaaa0001", "/wt"), "x")
    statements: list[str] = []
    with store.engine.connect() as conn:  # warm the pool: a new connection asks its own
        conn.execute(select(1))
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        task, its_repo = store.task_and_repo("aaaa0001")
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert (task, its_repo) == (store.get_task("aaaa0001"), repo)
    assert [s.split()[0] for s in statements if s != "BEGIN"] == ["SELECT"]  # BEGIN: SQLite
    with pytest.raises(NotFound, match="no task bbbb0001"):
        store.task_and_repo("bbbb0001")
