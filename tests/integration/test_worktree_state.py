"""What a worktree holds after an agent's job, read by one real git call (`git.worktree_state`).

It replaced two calls (the HEAD and its branch, then the changed files) after every job, so
every kind of change an agent can leave must still be found: names with spaces and non-ASCII
letters, deletions, files in new folders, an unmerged merge, and never the setup's virtualenv.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import GitError
from orchestrator.workspace import git as workspace_git
from tests.helpers import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "kept.txt").write_text("kept\n")
    (root / "doomed.txt").write_text("doomed\n")
    (root / ".gitignore").write_text("ignored/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def test_a_clean_worktree_on_its_branch(repo: Path) -> None:
    state = workspace_git.worktree_state(repo)
    assert state.head == git(repo, "rev-parse", "HEAD").strip()
    assert state.branch == "main"
    assert state.changed == ()


def test_every_kind_of_change_is_found_and_committed(repo: Path) -> None:
    (repo / "kept.txt").write_text("changed\n")
    (repo / "doomed.txt").unlink()
    (repo / "new folder" / "deep").mkdir(parents=True)
    (repo / "new folder" / "deep" / "with space é.txt").write_text("new\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "cache.bin").write_text("x")
    (repo / ".venv" / "lib").mkdir(parents=True)
    (repo / ".venv" / "lib" / "site.py").write_text("x")
    (repo / "pkg" / "__pycache__").mkdir(parents=True)
    (repo / "pkg" / "__pycache__" / "m.pyc").write_text("x")

    state = workspace_git.worktree_state(repo)
    assert sorted(state.changed) == ["doomed.txt", "kept.txt", "new folder/deep/with space é.txt"]

    commit = workspace_git.commit_paths(repo, state.changed, "agent: its work")
    assert commit == git(repo, "rev-parse", "HEAD").strip() != state.head
    assert workspace_git.worktree_state(repo).changed == ()
    tracked = git(repo, "ls-files").split("\n")
    assert "doomed.txt" not in tracked and ".venv/lib/site.py" not in tracked


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    state = workspace_git.worktree_state(repo)
    assert state.branch is None
    assert state.head == git(repo, "rev-parse", "HEAD").strip()


def test_an_unmerged_file_is_a_change(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "kept.txt").write_text("theirs\n")
    git(repo, "commit", "-q", "-am", "theirs")
    git(repo, "checkout", "-q", "main")
    (repo / "kept.txt").write_text("ours\n")
    git(repo, "commit", "-q", "-am", "ours")
    with pytest.raises(AssertionError):  # the conflict stops the merge
        git(repo, "merge", "-q", "other")
    assert workspace_git.worktree_state(repo).changed == ("kept.txt",)


def test_nothing_to_commit_makes_no_commit(repo: Path) -> None:
    assert workspace_git.commit_paths(repo, (), "nothing") is None
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"


def test_not_a_repository_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError):
        workspace_git.worktree_state(tmp_path)
