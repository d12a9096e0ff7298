"""What a task's branch changes: its commits and its diff against the default branch, read
from the repository without touching any working copy (for people: the dashboard, the API).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import GitError, NotFound
from orchestrator.store import Repo, Task
from orchestrator.workspace import checkout, git
from orchestrator.workspace.merging import base_ref, branch_ref

DIFF_MAX_BYTES = 1_000_000
COMMITS_MAX = 200


@dataclass(frozen=True)
class Commit:
    """One commit of the branch."""

    sha: str
    subject: str
    author: str


@dataclass(frozen=True)
class Changes:
    """The branch against the point where it left the default branch."""

    base: str  # the merge base
    head: str
    commits: tuple[Commit, ...]
    diff: str
    truncated: bool


def _where(home: Path, repo: Repo) -> Path:
    """The repository that holds the task's branch on this machine."""
    if not repo.is_remote:
        return Path(repo.path)
    clone = checkout.clone_dir(home, repo)
    if not clone.is_dir():
        raise NotFound(f"no clone of {repo.name} on this machine yet (a worker makes one)")
    return clone


def branch_changes(home: Path, repo: Repo, task: Task) -> Changes:
    """The task branch's commits and diff since it left the default branch."""
    where = _where(home, repo)
    head_ref, into = branch_ref(repo, task.branch), base_ref(repo)
    try:
        head = git.git(where, "rev-parse", "--verify", f"{head_ref}^{{commit}}").stdout.strip()
        base = git.git(where, "merge-base", into, head).stdout.strip()
    except GitError as exc:
        raise NotFound(f"the branch {task.branch} cannot be read: {exc}") from None
    listed = git.git(
        where, "log", f"--max-count={COMMITS_MAX}", "--format=%H%x1f%s%x1f%an", f"{base}..{head}"
    ).stdout
    commits = tuple(Commit(*line.split("\x1f", 2)) for line in listed.splitlines() if line)
    diff = git.git(where, "diff", "--no-color", "--no-ext-diff", base, head).stdout
    truncated = len(diff.encode()) > DIFF_MAX_BYTES
    if truncated:
        diff = diff.encode()[:DIFF_MAX_BYTES].decode("utf-8", "ignore")
    return Changes(base, head, commits, diff, truncated)
