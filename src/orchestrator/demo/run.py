"""`orch demo`: the whole pipeline on a sample repository, with nothing configured.

It creates a small Python service as a real git repository with a real pytest suite and a
staging check, registers it, submits a task, and runs every stage: scripted agents (or a
real one) for the judgement, and the real runners for the verdicts: real pytest, the real
staging suite, a real merge, a real health watch of an endpoint the demo serves itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from rich.console import Console
from rich.live import Live

from orchestrator.demo.health import HealthEndpoint
from orchestrator.demo.sample import create_sample_repo
from orchestrator.demo.view import Snapshot, print_event_lines, print_summary, render
from orchestrator.errors import InputError
from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import TaskState
from orchestrator.registry import RepoOptions, register_repo
from orchestrator.scheduler import Worker
from orchestrator.settings import Settings, env_key, load_settings
from orchestrator.store import Store, open_store
from orchestrator.store.base import utcnow
from orchestrator.story import task_story

TITLE = "Add total_value() to the inventory"
DESCRIPTION = """Add `total_value(items)` to `inventory/core.py`: the sum over all items of
quantity times unit price (0 for no items). Add tests for it in `tests/test_value.py`.
The staging suite (`python staging/check.py`) must keep passing."""
REFRESH_S = 0.2


@dataclass(frozen=True)
class DemoOptions:
    """What the user asked of the demo."""

    folder: Path | None = None  # None: a temporary folder, removed at the end
    backend: str = "scripted"


def demo_settings(root: Path, backend: str) -> Settings:
    """The user's settings, with the demo's own home, database, agents and a short health watch.

    The home and the database are always the demo's: its worker drains every task of the
    database it opens, so the user's ORCH_HOME or ORCH_DB_URL would hand their own tasks to
    scripted agents (and a shared PostgreSQL would hand the demo's task to real workers).
    """
    overrides: dict[str, object] = {"agent_backend": backend, "home": root / "home", "db_url": None}
    if backend == "scripted":
        overrides["agent_scenario"] = None  # set by run_demo from the packaged scenario
    for key, value in (("monitor_window_s", 2.0), ("monitor_interval_s", 0.5)):
        if env_key(key) not in os.environ:
            overrides[key] = value
    return load_settings(**overrides)


def isolation_notice() -> str | None:
    """One line for people whose ORCH_HOME or ORCH_DB_URL (environment or .env) is set."""
    user = load_settings()
    ignored = [env_key(name) for name in ("home", "db_url") if name in user.model_fields_set]
    if not ignored:
        return None
    points = "points" if len(ignored) == 1 else "point"
    return (
        f"the demo uses its own home and database: what your {' and '.join(ignored)} "
        f"{points} to is left untouched"
    )


def check_options(options: DemoOptions) -> None:
    """Refuse a --dir that holds anything: the demo never mixes its files with someone's."""
    if options.folder is not None and options.folder.exists() and any(options.folder.iterdir()):
        raise InputError(f"--dir {options.folder} is not empty: give a new or empty folder")


def run_demo(options: DemoOptions, console: Console) -> int:
    """Run the demo; 0 when the task ends done."""
    check_options(options)
    root = options.folder or Path(tempfile.mkdtemp(prefix="orch-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        with as_file(files(__package__).joinpath("scenario.toml")) as scenario:
            settings = demo_settings(root, options.backend)
            if options.backend == "scripted":
                settings = settings.model_copy(update={"agent_scenario": scenario})
            code, task_id = _run(settings, root, console)
    finally:
        if options.folder is None:
            shutil.rmtree(root, ignore_errors=True)
    # Said after the removal, so that the line tells what is on disk now.
    home = root / "home"  # demo_settings' home, whatever the environment says
    artifacts = home / "tasks" / task_id
    if options.folder is not None:
        rows = [
            ("artifacts", str(artifacts)),
            ("look", f"ORCH_HOME={home} orch task show {task_id}"),
        ]
    elif root.exists():
        rows = [("artifacts", f"{artifacts} (the temporary folder {root} could not be removed)")]
    else:
        rows = [
            (
                "artifacts",
                f"removed with the temporary folder {root} "
                "(orch demo --dir DIR keeps the repo, the database and every artifact)",
            )
        ]
    print_summary(console, rows)
    return code


def _run(settings: Settings, root: Path, console: Console) -> tuple[int, str]:
    """Run the demo's task; its exit code and the task's id."""
    started = time.monotonic()
    store = open_store(settings)
    try:
        console.print(f"[bold]orchestrator demo[/] in {root} (agents: {settings.agent_backend})")
        repo_path = create_sample_repo(root / "inventory")
        # The sample's deploy command copies the service here (its suites inherit our env).
        os.environ["INVENTORY_DEPLOY_DIR"] = str(root / "deployed")
        with HealthEndpoint() as health:
            name = f"inventory-{secrets.token_hex(2)}"
            register_repo(
                store,
                name,
                repo_path,
                RepoOptions(
                    staging_command="python staging/check.py",
                    deploy_command="python scripts/deploy.py",
                    health_url=health.url,
                ),
            )
            task = submit_task(store, settings.home, name, TITLE, DESCRIPTION)
            console.print(f"repo {name} at {repo_path}; task {task.id}: {TITLE}\n")
            snapshot = _follow(store, settings, task.id, console)
        elapsed = time.monotonic() - started
        _summary(store, settings, snapshot, repo_path, console, elapsed)
        return (0 if snapshot.task.state is TaskState.DONE else 1), task.id
    finally:
        store.close()


def _follow(store: Store, settings: Settings, task_id: str, console: Console) -> Snapshot:
    worker = Worker(store, settings, drain=True)
    thread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
    thread.start()
    backend = settings.agent_backend
    try:
        if console.is_terminal:
            with Live(console=console, refresh_per_second=8, transient=False) as live:
                while thread.is_alive():
                    live.update(render(Snapshot.read(store, task_id), backend))
                    thread.join(REFRESH_S)
                snapshot = Snapshot.read(store, task_id)
                live.update(render(snapshot, backend))
            return snapshot
        shown = 0
        while thread.is_alive():
            shown = print_event_lines(console, Snapshot.read(store, task_id), shown, backend)
            thread.join(REFRESH_S)
        snapshot = Snapshot.read(store, task_id)
        print_event_lines(console, snapshot, shown, backend)
        return snapshot
    except KeyboardInterrupt:
        worker.stop()
        thread.join(30)
        raise


def _demo_words(key: str, value: str, repo: Path, seconds: float, settings: Settings) -> str:
    """The story's row as the demo says it: the wall time, the working copy merged into,
    real pytest, and the agents' backend."""
    if key == "task":
        return value.rsplit(", ", 1)[0] + f", {seconds:.1f}s"
    if key == "merged":
        return value.split(" into ")[0] + f" into main of {repo}"
    if key == "caught":
        return value.replace(":", " with real pytest:", 1) + (
            "; the task went back to development with the report"
        )
    if key == "verdicts":
        return f"{value} ({settings.agent_backend})"
    return value


def _summary(
    store: Store,
    settings: Settings,
    snapshot: Snapshot,
    repo_path: Path,
    console: Console,
    seconds: float,
) -> None:
    task = snapshot.task
    rows = [
        (key, _demo_words(key, value, repo_path, seconds, settings))
        for key, value in task_story(store, task, snapshot.events, snapshot.jobs, utcnow())
        if key != "worktree"  # the demo's folder is shown above
    ]
    console.print()
    print_summary(console, rows)
