"""Where a task's work happens on this machine: its repo's git directory and its worktree.

A repo registered by the path of a working copy is used in place: tasks branch from it and
their worktrees hang off it (one machine). A repo registered by a URL or a bare repository
is a remote: each worker keeps its own bare clone under `$ORCH_HOME/repos/`, creates a
task's worktree locally from the remote's `orch/<id>` before a job, and pushes the branch
after a job that changed it. The remote is the truth; a worktree holds nothing that is not
pushed, so any worker on any machine can take the next job.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.store import Repo, Task
from orchestrator.workspace import git, layout

_FETCH = "+refs/heads/*:refs/remotes/origin/*"
_clone_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def clone_dir(home: Path, repo: Repo) -> Path:
    """This worker's bare clone of a remote repo."""
    return home / "repos" / f"{repo.name}.git"


def _lock(path: Path) -> threading.Lock:
    with _guard:
        return _clone_locks.setdefault(str(path), threading.Lock())


def sync_clone(home: Path, repo: Repo) -> Path:
    """Clone the remote on first use, fetch it after; returns the clone."""
    path = clone_dir(home, repo)
    with _lock(path):
        if not (path / "HEAD").is_file():
            staging = path.with_name(path.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.parent.mkdir(parents=True, exist_ok=True)
            git.git(staging.parent, "clone", "--bare", "--quiet", repo.path, str(staging),
                    timeout=600)  # fmt: skip
            git.git(staging, "config", "remote.origin.fetch", _FETCH)
            staging.rename(path)  # a half-made clone is never mistaken for a whole one
        git.git(path, "fetch", "--quiet", "--prune", "origin", timeout=600)
    return path


def git_dir(home: Path, repo: Repo) -> Path:
    """The git repository the repo's tasks branch from, on this machine."""
    return sync_clone(home, repo) if repo.is_remote else Path(repo.path)


def start_branch(home: Path, repo: Repo, branch: str, worktree: Path) -> None:
    """Create the task's branch from the default branch, and its worktree (intake)."""
    if not repo.is_remote:
        git.add_worktree(Path(repo.path), worktree, branch, repo.default_branch)
        return
    clone = sync_clone(home, repo)
    git.add_worktree(clone, worktree, branch, f"refs/remotes/origin/{repo.default_branch}")
    git.git(clone, "push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}")


def undo_branch(home: Path, repo: Repo, branch: str, worktree: Path) -> None:
    """Take back `start_branch`: the worktree, the local branch and a pushed one."""
    root = clone_dir(home, repo) if repo.is_remote else Path(repo.path)
    if not root.exists():
        return
    git.remove_worktree(root, worktree)
    git.delete_branch(root, branch)
    if repo.is_remote:
        git.git(root, "push", "--quiet", "origin", "--delete", branch, check=False)


def prepare(home: Path, repo: Repo, task: Task) -> Task:
    """The task with a worktree on this machine, at the tip of its branch (before a job)."""
    if not repo.is_remote:
        return task
    clone = sync_clone(home, repo)
    worktree = layout.worktree_dir(home, task.id)
    tip = f"refs/remotes/origin/{task.branch}"
    if not git.has_ref(clone, tip):
        raise GitError(f"the remote has no branch {task.branch}")
    if not (worktree / ".git").exists():
        git.git(clone, "worktree", "prune")
        if git.has_branch(clone, task.branch):
            git.git(clone, "worktree", "add", "--quiet", "--force", str(worktree), task.branch)
        else:
            git.add_worktree(clone, worktree, task.branch, tip)
    # The remote is the truth: whatever a crashed job left here and never pushed is dropped.
    git.git(worktree, "reset", "--quiet", "--hard", tip)
    return replace(task, worktree=str(worktree))


def publish(repo: Repo, task: Task) -> None:
    """Push the task's branch after a job committed to it (remote repos only)."""
    if repo.is_remote:
        worktree = Path(task.worktree)
        git.git(worktree, "push", "--quiet", "origin", f"HEAD:refs/heads/{task.branch}")


def retire(home: Path, repo: Repo, task: Task) -> None:
    """Remove the task's worktree on this machine (its branch stays)."""
    if repo.is_remote:
        clone = clone_dir(home, repo)
        if clone.exists():
            git.remove_worktree(clone, layout.worktree_dir(home, task.id))
        return
    git.remove_worktree(Path(repo.path), Path(task.worktree))
