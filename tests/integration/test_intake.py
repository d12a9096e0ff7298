"""Intake on real git repositories: a task gets its branch, worktree and 01-task.md, or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import GitError, InputError, NotFound, StoreError
from orchestrator.intake import submit_task
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.store import RepoSpec, Store
from tests.helpers import entries, git


@pytest.fixture
def repo_path(make_repo: Callable[..., Path], store: Store) -> Path:
    path = make_repo("app")
    store.add_repo("app", RepoSpec(path=str(path), default_branch="main"))
    return path


def assert_nothing_made(repo_path: Path, home: Path, store: Store) -> None:
    assert git(repo_path, "branch", "--list", "orch/*").strip() == ""
    assert git(repo_path, "worktree", "list").count("\n") == 1
    assert entries(home / "worktrees") == []
    assert entries(home / "tasks") == []
    assert store.list_tasks() == []


def test_task_gets_branch_worktree_and_task_artifact(
    repo_path: Path, orch_home: Path, store: Store
) -> None:
    task = submit_task(store, orch_home, "app", "Add a --json flag", "to the export command")
    assert (task.stage, task.state, task.round, task.branch) == (
        Stage.ANALYSIS,
        TaskState.ACTIVE,
        1,
        f"orch/{task.id}",
    )
    worktree = Path(task.worktree)
    assert worktree == orch_home / "worktrees" / task.id
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD").strip() == task.branch
    assert git(worktree, "rev-parse", "HEAD") == git(repo_path, "rev-parse", "main")
    on_disk = (orch_home / "tasks" / task.id / "01-task.md").read_text()
    assert on_disk == store.get_artifact(task.id, "01-task.md").text
    assert "# Add a --json flag" in on_disk and "to the export command" in on_disk
    assert f"branch: orch/{task.id}" in on_disk


def test_user_working_copy_is_untouched_by_intake(
    repo_path: Path, orch_home: Path, store: Store
) -> None:
    (repo_path / "notes.txt").write_text("mine, untracked")
    (repo_path / "README.md").write_text("edited, uncommitted")
    submit_task(store, orch_home, "app", "Something", "")
    assert (repo_path / "notes.txt").read_text() == "mine, untracked"
    assert (repo_path / "README.md").read_text() == "edited, uncommitted"
    assert git(repo_path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"


def test_title_whitespace_is_normalised(repo_path: Path, orch_home: Path, store: Store) -> None:
    task = submit_task(store, orch_home, "app", "  Add\n a   flag ", "")
    assert task.title == "Add a flag"


@pytest.mark.parametrize("title", ["", "   ", "\n\t"])
def test_empty_title_is_refused_and_nothing_is_made(
    repo_path: Path, orch_home: Path, store: Store, title: str
) -> None:
    with pytest.raises(InputError, match="title is empty"):
        submit_task(store, orch_home, "app", title, "")
    assert_nothing_made(repo_path, orch_home, store)


def test_unknown_repo_is_refused(repo_path: Path, orch_home: Path, store: Store) -> None:
    with pytest.raises(NotFound, match="no repo named 'other'"):
        submit_task(store, orch_home, "other", "x", "")
    assert_nothing_made(repo_path, orch_home, store)


def test_folder_failure_after_worktree_rolls_everything_back(
    repo_path: Path, orch_home: Path, store: Store
) -> None:
    orch_home.mkdir(parents=True, exist_ok=True)
    (orch_home / "tasks").write_text("a file where the artifact folders should go")
    with pytest.raises(OSError):
        submit_task(store, orch_home, "app", "x", "")
    assert_nothing_made(repo_path, orch_home, store)
    assert (orch_home / "tasks").read_text().startswith("a file")  # the user's file survives


def test_database_failure_after_worktree_rolls_everything_back(
    repo_path: Path, orch_home: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise StoreError("database unavailable: injected")

    monkeypatch.setattr(store, "create_task", broken)
    with pytest.raises(StoreError):
        submit_task(store, orch_home, "app", "x", "")
    assert_nothing_made(repo_path, orch_home, store)


def test_vanished_repo_path_is_a_clear_error(
    repo_path: Path, orch_home: Path, store: Store
) -> None:
    store.update_repo("app", RepoSpec(path=str(repo_path.parent / "moved")))
    with pytest.raises(GitError, match="no longer exists"):
        submit_task(store, orch_home, "app", "x", "")


def test_missing_default_branch_is_a_git_error_and_nothing_is_made(
    repo_path: Path, orch_home: Path, store: Store
) -> None:
    store.update_repo("app", RepoSpec(default_branch="gone"))
    with pytest.raises(GitError):
        submit_task(store, orch_home, "app", "x", "")
    assert_nothing_made(repo_path, orch_home, store)


def test_secrets_are_masked_in_the_stored_task_artifact_and_kept_in_the_description(
    repo_path: Path, orch_home: Path, store: Store
) -> None:
    secret = "tok-1234567890"
    task = submit_task(
        store, orch_home, "app", "Deploy it", f"use {secret} to log in", secrets=(secret,)
    )
    assert store.get_task(task.id).description == f"use {secret} to log in"
    on_disk = (orch_home / "tasks" / task.id / "01-task.md").read_text()
    assert on_disk == store.get_artifact(task.id, "01-task.md").text
    assert "use [redacted] to log in" in on_disk and secret not in on_disk
