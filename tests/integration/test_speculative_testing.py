"""Speculative testing: a task waiting behind another in the merge queue is tested on top of it.

Real git, real pytest, the real runners. The task behind is tested on its branch merged with
what the task ahead was tested as; when the one ahead lands as tested, the one behind ships
with no second run (the merge has the very tree that passed); when the one ahead does not
land, the deploy finds another tree and the task is tested again on the real base.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.intake import submit_task
from orchestrator.pipeline.gates import GateStatus, run_gate
from orchestrator.pipeline.stages import Stage
from orchestrator.pipeline.verdicts import Judged
from orchestrator.proc import CancelToken
from orchestrator.runners.base import RunnerOutcome, RunnerRequest
from orchestrator.runners.deploy_finalizer import DeployFinalizer
from orchestrator.runners.staging_runner import StagingRunner
from orchestrator.runners.test_runner import TestRunner
from orchestrator.settings import load_settings
from orchestrator.store import RepoSpec, Store, Task
from orchestrator.workspace import checkout
from orchestrator.workspace.merging import Ahead
from tests.helpers import git, sqlite_only, unique_marker

FILES = {
    "app.py": "VALUE = 1\n",
    "tests/test_app.py": "from app import VALUE\n\ndef test_value():\n    assert VALUE == 1\n",
    ".gitignore": "__pycache__/\n",
}


def work(task: Task, files: dict[str, str]) -> str:
    """Commit `files` on the task's branch, as a developer's round would."""
    for name, content in files.items():
        (Path(task.worktree) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(task.worktree) / name).write_text(content)
    git(Path(task.worktree), "add", "-A")
    git(Path(task.worktree), "commit", "-q", "-m", f"work of {task.id}")
    return git(Path(task.worktree), "rev-parse", "HEAD").strip()


def feature(name: str) -> dict[str, str]:
    return {
        f"{name}.py": f"def {name}():\n    return '{name}'\n",
        f"tests/test_{name}.py": f"from {name} import {name}\n\n"
        f"def test_{name}():\n    assert {name}() == '{name}'\n",
    }


Request = Callable[..., RunnerRequest]


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: the runners read their records, they never query the database."""
    return sqlite_only(tmp_path, monkeypatch)


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo("app", files=FILES)


@pytest.fixture
def request_for(store: Store, orch_home: Path, repo: Path, tmp_path: Path) -> Iterator[Request]:
    store.add_repo(
        "app",
        RepoSpec(path=str(repo), default_branch="main", staging_command="python -m feature_a"),
    )
    token = CancelToken()

    def make(task: Task, stage: Stage, **fields: object) -> RunnerRequest:
        return RunnerRequest(
            task=task,
            repo=store.get_repo("app"),
            job=store.task_jobs(task.id)[0],
            settings=load_settings(),
            artifact_path=tmp_path / f"{task.id}-{stage}.md",
            log_path=tmp_path / f"{task.id}-{stage}.log",
            cancel=token,
            on_start=lambda started: None,
            marker=unique_marker(),
            **fields,  # type: ignore[arg-type]
        )

    yield make
    token.close()


@pytest.fixture
def tasks(store: Store, orch_home: Path, request_for: Request) -> tuple[Task, Task]:
    """Two tasks with independent work: A adds feature_a, B adds feature_b."""
    first = submit_task(store, orch_home, "app", "Add feature a", "")
    second = submit_task(store, orch_home, "app", "Add feature b", "")
    work(first, feature("feature_a"))
    work(second, feature("feature_b"))
    return first, second


def verdict(outcome: RunnerOutcome) -> tuple[str, Judged]:
    assert outcome.artifact is not None, outcome.reason
    judged = Judged.read(outcome.artifact)
    assert judged is not None
    return outcome.artifact, judged


def passed_count(report: str) -> int:
    row = report.split("|---|---|---|---|---|\n")[1].splitlines()[0]
    return int(row.strip("| ").split(" | ")[0])


def on_branch(task: Task) -> str:
    return git(Path(task.worktree), "symbolic-ref", "--short", "HEAD").strip()


def test_the_task_behind_is_tested_on_top_of_the_one_ahead_and_ships_with_no_second_run(
    repo: Path, tasks: tuple[Task, Task], request_for: Request
) -> None:
    first, second = tasks
    report_a, judged_a = verdict(TestRunner().run(request_for(first, Stage.TESTING)))
    assert run_gate(Stage.TESTING, report_a).passed and passed_count(report_a) == 2
    tip_b = git(Path(second.worktree), "rev-parse", "HEAD").strip()

    ahead = (Ahead(first.id, judged_a.tested, True),)
    report_b, judged_b = verdict(TestRunner().run(request_for(second, Stage.TESTING, ahead=ahead)))

    # The suite ran on B merged with A: A's test ran too, and the report says so.
    assert run_gate(Stage.TESTING, report_b).passed and passed_count(report_b) == 3
    assert f"tasks ahead in the merge queue ({first.id})" in report_b
    assert judged_b.tested != tip_b and judged_b.tree is not None
    # B's branch holds only B's work, and the worktree is back on it.
    assert git(Path(second.worktree), "rev-parse", "HEAD").strip() == tip_b
    assert on_branch(second) == second.branch
    assert "feature_a.py" not in git(repo, "ls-tree", "--name-only", second.branch)

    # Staging runs the tested commit too (its command imports A's module).
    staged = StagingRunner().run(request_for(second, Stage.DEPLOY_STAGING, tested=judged_b))
    assert staged.artifact is not None and run_gate(Stage.DEPLOY_STAGING, staged.artifact).passed
    assert f"tested_commit: {judged_b.tested}" in staged.artifact
    assert on_branch(second) == second.branch

    for task, judged in ((first, judged_a), (second, judged_b)):
        log = DeployFinalizer().run(request_for(task, Stage.DEPLOY, tested=judged)).artifact
        assert log is not None and run_gate(Stage.DEPLOY, log).passed, log
    # main moved to a commit with exactly the tree the task behind was tested as.
    assert git(repo, "rev-parse", "main^{tree}").strip() == judged_b.tree


def test_when_the_one_ahead_does_not_land_the_one_behind_is_tested_again_on_the_real_base(
    repo: Path, tasks: tuple[Task, Task], request_for: Request
) -> None:
    first, second = tasks
    _, judged_a = verdict(TestRunner().run(request_for(first, Stage.TESTING)))
    ahead = (Ahead(first.id, judged_a.tested, True),)
    _, judged_b = verdict(TestRunner().run(request_for(second, Stage.TESTING, ahead=ahead)))
    main = git(repo, "rev-parse", "main").strip()

    # A fails at staging and never lands: B's deploy would not ship what was tested.
    log = DeployFinalizer().run(request_for(second, Stage.DEPLOY, tested=judged_b)).artifact
    assert log is not None and run_gate(Stage.DEPLOY, log).status is GateStatus.RETEST
    assert "the tasks ahead in the merge queue" in log and "did not land" in log
    assert git(repo, "rev-parse", "main").strip() == main

    report, judged = verdict(TestRunner().run(request_for(second, Stage.TESTING)))
    assert run_gate(Stage.TESTING, report).passed and passed_count(report) == 2
    log = DeployFinalizer().run(request_for(second, Stage.DEPLOY, tested=judged)).artifact
    assert log is not None and run_gate(Stage.DEPLOY, log).passed
    assert "feature_a.py" not in git(repo, "ls-tree", "--name-only", "main")


def test_a_task_that_conflicts_with_the_one_ahead_is_tested_on_its_real_base(
    store: Store, orch_home: Path, request_for: Request
) -> None:
    first = submit_task(store, orch_home, "app", "Value two", "")
    second = submit_task(store, orch_home, "app", "Value three", "")
    work(first, {"app.py": "VALUE = 2\n", "tests/test_app.py": "def test_value():\n    pass\n"})
    tip = work(second, {"app.py": "VALUE = 3\n"})
    _, judged_a = verdict(TestRunner().run(request_for(first, Stage.TESTING)))

    ahead = (Ahead(first.id, judged_a.tested, True),)
    report, judged = verdict(TestRunner().run(request_for(second, Stage.TESTING, ahead=ahead)))

    assert judged.tested == tip and "tasks ahead" not in report
    assert not run_gate(Stage.TESTING, report).passed  # its own test expects VALUE == 1


def test_a_worktree_left_detached_by_a_killed_run_is_put_back_on_its_branch(
    tasks: tuple[Task, Task], store: Store, orch_home: Path
) -> None:
    first, _ = tasks
    worktree = Path(first.worktree)
    tip = git(worktree, "rev-parse", "HEAD").strip()
    # What a test run killed mid-suite leaves: the marker, and HEAD detached at its commit.
    git(worktree, "update-ref", checkout.DETACHED_FOR_TEST, "HEAD~1")
    git(worktree, "checkout", "-q", "--detach", "HEAD~1")
    (worktree / "app.py").write_text("VALUE = 'changed by the suite'\n")

    checkout.prepare(orch_home, store.get_repo("app"), first)

    assert on_branch(first) == first.branch
    assert git(worktree, "rev-parse", "HEAD").strip() == tip
    assert git(worktree, "status", "--porcelain").strip() == ""


def test_a_worktree_an_agent_left_detached_is_left_to_keep_work(
    tasks: tuple[Task, Task], store: Store, orch_home: Path
) -> None:
    first, _ = tasks
    worktree = Path(first.worktree)
    git(worktree, "checkout", "-q", "--detach")
    (worktree / "notes.txt").write_text("the agent's own, uncommitted\n")

    checkout.prepare(orch_home, store.get_repo("app"), first)

    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"  # detached
    assert (worktree / "notes.txt").read_text() == "the agent's own, uncommitted\n"
