"""Merges made without touching a working tree, and a task's branch brought up to its base.

What ships must be what was tested: the test-runner first merges the default branch's tip
into the task's branch (`bring_up_to_date`), so the suite runs on the very tree the merge
will produce, and the deploy-finalizer later moves the default branch only when the merge
it would make has exactly the tree that was tested, else sends the task to be tested again.
While other tasks wait to merge first, the suite runs on this task's branch merged with
theirs (`speculate`), so a queue of passing tasks lands with one test run each. Merges are
computed with `git merge-tree --write-tree`, so a conflict changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.store import Repo, Task
from orchestrator.workspace import checkout, git

# A fix round's prompt names the commits the base brought; past this many, a count.
BROUGHT_SHOWN = 20


class MergeConflict(Exception):
    """Two lines of history change the same lines: a merge needs a person or an agent."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__("the merge conflicts in: " + ", ".join(paths))
        self.paths = tuple(paths)


def commit_of(repo: Path, ref: str) -> str:
    """The commit `ref` points at (a GitError when it points nowhere)."""
    return git.git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}").stdout.strip()


def base_ref(repo: Repo) -> str:
    """The ref of the repo's default branch as a task's worktree sees it (a remote repo's
    worktree hangs off a clone, fetched before each job)."""
    return branch_ref(repo, repo.default_branch)


def branch_ref(repo: Repo, branch: str) -> str:
    """The ref of one of the repo's branches as a task's worktree sees it."""
    return f"refs/remotes/origin/{branch}" if repo.is_remote else f"refs/heads/{branch}"


def merged_tree(repo: Path, first: str, second: str) -> str:
    """The tree the merge of `first` and `second` would have, computed without a working
    tree; MergeConflict names the paths when the two conflict."""
    tree = git.git(
        repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", first, second,
        check=False,
    )  # fmt: skip
    if tree.returncode == 1:
        raise MergeConflict([p for p in tree.stdout.splitlines()[1:] if p.strip()])
    if not tree.ok:
        raise GitError(f"git merge-tree failed: {tree.stderr.strip()}")
    return tree.stdout.split()[0]


def tree_of(repo: Path, commit: str) -> str:
    """The tree a commit records."""
    return git.git(repo, "rev-parse", "--verify", f"{commit}^{{tree}}").stdout.strip()


def merge_commit(repo: Path, first: str, second: str, message: str) -> str:
    """The merge commit of `second` into `first` (its first parent), made without a working
    tree; MergeConflict names the paths when the two conflict."""
    return _commit_tree(repo, merged_tree(repo, first, second), first, second, message)


def _commit_tree(repo: Path, tree: str, first: str, second: str, message: str) -> str:
    return git.git(
        repo,
        "commit-tree",
        tree,
        "-p",
        first,
        "-p",
        second,
        "-m",
        message,
        extra_env=git.identity_env(repo),
    ).stdout.strip()


@dataclass(frozen=True)
class Update:
    """What bringing a branch up to its base did."""

    base: str  # the default branch's commit merged in (or already contained)
    tip: str  # the branch's tip afterwards: the commit to test
    brought: tuple[str, ...] = ()  # "<short id> <subject>" of each base commit it lacked
    conflicts: tuple[str, ...] = ()  # when set, the merge conflicts and nothing changed

    @property
    def merged(self) -> bool:
        """True when the base brought commits the branch lacked."""
        return bool(self.brought)


def bring_up_to_date(worktree: Path, base: str, message: str) -> Update:
    """Merge the commit `base` into the branch checked out in `worktree` (its own merge
    commit, a fast-forward of the branch); nothing changes when `base` is already part of it
    or when the two conflict (then `conflicts` names the paths)."""
    tip = git.head(worktree)
    if git.is_ancestor(worktree, base, tip):
        return Update(base, tip)
    log = git.git(worktree, "log", "--format=%h %s", f"{tip}..{base}").stdout.splitlines()
    brought = tuple(log[:BROUGHT_SHOWN])
    if len(log) > BROUGHT_SHOWN:
        brought += (f"... and {len(log) - BROUGHT_SHOWN} more",)
    try:
        merged = merge_commit(worktree, tip, base, message)
    except MergeConflict as conflict:
        return Update(base, tip, brought, conflict.paths)
    git.git(worktree, "merge", "--ff-only", "--quiet", merged)
    return Update(base, merged, brought)


def start_fix_round(worktree: Path, base: str, message: str) -> Update:
    """A fix round starts on the tree that failed: `base` merged into the branch first. On a
    conflict the merge is left in progress, conflict markers in the files, for the developer
    to resolve; the commit of its work after the job concludes the merge."""
    if git.git(worktree, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).ok:
        unmerged = git.git(worktree, "diff", "--name-only", "--diff-filter=U").stdout.split()
        return Update(base, git.head(worktree), ("(a merge already in progress)",), tuple(unmerged))
    update = bring_up_to_date(worktree, base, message)
    if update.conflicts:
        git.git(worktree, "merge", "--no-ff", "--no-commit", "-m", message, base, check=False)
    return update


def fix_round_note(default: str, update: Update) -> str | None:
    """What a fix round's developer is told of the base, or None when it did not move."""
    if not update.merged:
        return None
    brought = "\n".join(f"- {line}" for line in update.brought)
    if update.conflicts:
        paths = "\n".join(f"- `{path}`" for path in update.conflicts)
        return (
            f"`{default}` moved since this branch was tested, and merging it in conflicts. The "
            f"merge is in progress in your worktree, with conflict markers in:\n\n{paths}\n\n"
            "Resolve each one, keeping the intent of both sides, and leave no marker; the "
            f"orchestrator commits the merge with your work. `{default}` brought:\n\n{brought}"
        )
    return (
        f"`{default}` moved since this branch was made: the orchestrator merged it into the "
        f"branch first (its own commit), so your worktree holds the tree that was tested. It "
        f"brought:\n\n{brought}"
    )


def merge_base_in(repo: Repo, task: Task, purpose: str, *, leave_conflict: bool = False) -> Update:
    """Merge the default branch's tip into the task's branch in its worktree ("Merge main
    into orch/<id> <purpose>"), and push a remote repo's branch when it moved. With
    `leave_conflict` (a fix round) a conflicting merge is left in progress for the developer."""
    worktree = Path(task.worktree)
    base = commit_of(worktree, base_ref(repo))
    message = f"Merge {repo.default_branch} into {task.branch} {purpose} (task {task.id})"
    update = (start_fix_round if leave_conflict else bring_up_to_date)(worktree, base, message)
    if update.merged and not update.conflicts:
        checkout.publish(repo, task)
    return update


@dataclass(frozen=True)
class Ahead:
    """A task that will merge before the one being tested (the gate's holder, or an older
    task in testing or waiting for the gate), and what of it will land."""

    task_id: str
    ref: str  # the commit its test judged, or while it is in testing its branch
    tested: bool  # `ref` is the commit its test judged


def expected_base(repo: Path, base: str, ahead: Sequence[Ahead]) -> tuple[str, list[str]]:
    """What the default branch will hold once the tasks `ahead` land, in order, as tested
    (or, for one still in testing, as its test will merge it), and the ids of the ones it
    holds. One that already landed adds nothing. One whose test missed something now on the
    default branch (a stale one) will be tested again behind, so it is left out; so is one
    that conflicts, and one whose commit was made on another machine."""
    expected, tree, taken = base, tree_of(repo, base), []
    for other in ahead:
        if not git.has_ref(repo, other.ref):
            continue
        commit = commit_of(repo, other.ref)
        try:
            after = merged_tree(repo, expected, commit)
        except MergeConflict:
            continue
        if after == tree or (other.tested and after != tree_of(repo, commit)):
            continue
        expected = commit if other.tested else _commit_tree(repo, after, expected, commit, "")
        tree = after
        taken.append(other.task_id)
    return expected, taken


def speculate(
    worktree: Path, base: str, tip: str, ahead: Sequence[Ahead], message: str
) -> tuple[str, list[str]] | None:
    """The commit to test while other tasks will merge first (Zuul's dependent pipelines),
    and the ids of those it holds: `tip` (which holds `base`) merged with what the default
    branch will be once they land. When they land as tested, what this task ships has
    exactly this tree, with no second test run; when one ahead fails, the deploy finds
    another tree and tests again on the real base.

    None when nothing ahead adds a change or when this task conflicts with the ones ahead:
    it is tested on its real base, and a conflict, if they land, shows at the re-test.
    """
    expected, taken = expected_base(worktree, base, ahead)
    if not taken:
        return None
    try:
        return merge_commit(worktree, tip, expected, message), taken
    except MergeConflict:
        return None
