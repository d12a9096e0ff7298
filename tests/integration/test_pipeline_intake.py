"""A repo's own pipeline at intake, on both stores: kept with the task, read from the default
branch only, and a bad file or an approval first handled before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.api.dashboard_views import board
from orchestrator.errors import InputError
from orchestrator.intake import submit_task
from orchestrator.pipeline.pipelines import read_pipeline
from orchestrator.pipeline.stages import Stage, StageKind, TaskState
from orchestrator.store import RepoSpec, Store
from tests.conftest import Run
from tests.helpers import entries, git

PIPELINE = """\
[[stage]]
name = "design"
[[stage]]
name = "development"
[[stage]]
name = "types"
kind = "check"
command = ["python", "-c", "pass"]
on_fail = "blocked"
"""


def add(store: Store, path: Path, skip: frozenset[Stage] = frozenset()) -> None:
    store.add_repo("app", RepoSpec(path=str(path), default_branch="main", skip_stages=skip))


def test_a_task_keeps_the_pipeline_its_default_branch_declared(
    make_repo: Callable[..., Path], orch_home: Path, store: Store
) -> None:
    path = make_repo("app", files={"orch.toml": PIPELINE})
    add(store, path, frozenset({Stage.DESIGN}))
    git(path, "switch", "-q", "-c", "other")  # the working copy's own branch is not read
    (path / "orch.toml").write_text('[[stage]]\nname = "development"\n')
    git(path, "commit", "-qam", "elsewhere")

    task = submit_task(store, orch_home, "app", "Type it", "")
    read = store.get_task(task.id)
    assert read.pipeline == read_pipeline(PIPELINE)
    assert read.pipeline.order == ("design", "development", "types")
    assert (read.stage, read.state) == (Stage.DEVELOPMENT, TaskState.ACTIVE)  # design skipped
    assert read.pipeline.spec("types").kind is StageKind.CHECK
    assert [job.stage for job in store.task_jobs(task.id)] == [Stage.DEVELOPMENT]
    # Listing many tasks reads each one's pipeline too.
    assert [t.pipeline for t in store.list_tasks()] == [read.pipeline]


def test_a_pipeline_that_starts_with_an_approval_waits_for_it_with_no_job(
    make_repo: Callable[..., Path], orch_home: Path, store: Store
) -> None:
    first = '[[stage]]\nname = "go-ahead"\nkind = "approval"\non_fail = "failed"\n'
    path = make_repo("app", files={"orch.toml": first + PIPELINE})
    add(store, path)
    task = submit_task(store, orch_home, "app", "Ask first", "")
    assert (task.stage, task.state) == ("go-ahead", TaskState.BLOCKED)
    assert "approval" in (task.reason or "")
    assert store.task_jobs(task.id) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[[stage]]\nname = "review"\n', "does not come before it"),
        ('[[stage]]\nname = "lint"\nkind = "check"\ncommand = []\non_fail = "failed"\n',
         "non-empty list"),
    ],
)  # fmt: skip
def test_a_bad_file_on_the_default_branch_makes_nothing(
    make_repo: Callable[..., Path], orch_home: Path, store: Store, text: str, problem: str
) -> None:
    path = make_repo("app")
    add(store, path)
    (path / "orch.toml").write_text(text)
    git(path, "add", "orch.toml")
    git(path, "commit", "-qm", "a pipeline")
    with pytest.raises(InputError, match=problem):
        submit_task(store, orch_home, "app", "Anything", "")
    assert git(path, "branch", "--list", "orch/*").strip() == ""
    assert entries(orch_home / "worktrees") == [] and entries(orch_home / "tasks") == []
    assert store.list_tasks() == []


def test_a_pipeline_whose_every_stage_is_skipped_is_refused(
    make_repo: Callable[..., Path], orch_home: Path, store: Store
) -> None:
    path = make_repo("app", files={"orch.toml": '[[stage]]\nname = "design"\n'})
    add(store, path, frozenset({Stage.DESIGN}))
    with pytest.raises(InputError, match="every stage"):
        submit_task(store, orch_home, "app", "Anything", "")
    assert store.list_tasks() == []


def test_status_and_the_board_show_a_task_in_a_stage_of_the_repos_own(
    make_repo: Callable[..., Path], orch_home: Path, store: Store, orch: Callable[..., Run]
) -> None:
    first = '[[stage]]\nname = "spec-lint"\nkind = "check"\ncommand = ["true"]\n'
    first += 'on_fail = "blocked"\n'
    path = make_repo("app", files={"orch.toml": first + PIPELINE})
    add(store, path)
    task = submit_task(store, orch_home, "app", "Lint the spec", "")
    assert (task.stage, task.state) == ("spec-lint", TaskState.ACTIVE)
    shown = orch("status")
    assert shown.code == 0 and "active: 1 in spec-lint" in shown.out
    columns = [column.key for column in board(store)]
    assert columns[:2] == ["spec-lint", "analysis"]  # before the stage that follows it
    [card] = next(c for c in board(store) if c.key == "spec-lint").cards
    assert card.task.id == task.id
