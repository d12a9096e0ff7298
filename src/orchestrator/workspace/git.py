"""Git operations on users' repositories, through the process layer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.proc import CancelToken, CommandResult, run_command
from orchestrator.proc.env import child_env

# Variables that would point git at another repository than the one we name (set, for
# instance, when orchestrator runs inside a git hook). Identity and config pass through.
_REDIRECTING = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
)


def git_env() -> dict[str, str]:
    """The environment git runs in: a child's (ours minus our secrets, which git would hand
    on to the repository's hooks), minus redirections, never prompting."""
    ours = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    # LC_ALL=C: the messages we match on are in English.
    return child_env({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}, base=ours)


def git(
    repo: Path | str,
    *args: str,
    check: bool = True,
    timeout: float = 120.0,
    extra_env: dict[str, str] | None = None,
    stdin_text: str | None = None,
    cancel: CancelToken | None = None,
) -> CommandResult:
    """Run `git -C repo args...`; GitError with git's own message when it fails and `check`.
    `cancel` stops it (killed) the moment it is set."""
    env = {**git_env(), **(extra_env or {})}
    argv = ["git", "-C", str(repo), *args]
    result = run_command(argv, env=env, timeout=timeout, stdin_text=stdin_text, cancel=cancel)
    if check and not result.ok:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise GitError(f"git {args[0]} failed: {message[-1] if message else result.returncode}")
    return result


def toplevel(path: Path) -> Path:
    """The root of the working copy that contains `path`; GitError when it is none."""
    if not path.is_dir():
        raise GitError(f"{path} is not a directory")
    result = git(path, "rev-parse", "--show-toplevel", check=False)
    if not result.ok or not result.stdout.strip():
        raise GitError(f"{path} is not a git repository (no working copy found)")
    return Path(result.stdout.strip())


def current_branch(repo: Path) -> str | None:
    """The branch checked out in `repo`, or None on a detached HEAD."""
    result = git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if not result.ok:
        return None
    return result.stdout.strip() or None


def has_branch(repo: Path, branch: str) -> bool:
    """True when `repo` has a local branch of that name (with at least one commit)."""
    result = git(
        repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False
    )
    return result.ok


def has_ref(repo: Path, ref: str) -> bool:
    """True when `ref` names a commit in `repo`."""
    return git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).ok


def check_branch_name(repo: Path, branch: str) -> None:
    """GitError when `branch` is not a valid branch name."""
    if (
        branch.startswith("-")
        or not git(repo, "check-ref-format", "--branch", branch, check=False).ok
    ):
        raise GitError(f"{branch!r} is not a valid branch name")


def add_worktree(repo: Path, worktree: Path, branch: str, base: str) -> None:
    """Create `branch` from `base` and check it out in a new worktree at `worktree`."""
    worktree.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "--quiet", "-b", branch, str(worktree), base)


def remove_worktree(repo: Path, worktree: Path) -> None:
    """Remove a worktree (and its files) if it is there; git's bookkeeping is pruned."""
    if worktree.exists():
        git(repo, "worktree", "remove", "--force", str(worktree), check=False)
    git(repo, "worktree", "prune", check=False)


def delete_branch(repo: Path, branch: str) -> None:
    """Delete a local branch if it exists."""
    if has_branch(repo, branch):
        git(repo, "branch", "-D", branch, check=False)


_FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "orchestrator",
    "GIT_AUTHOR_EMAIL": "orchestrator@localhost",
    "GIT_COMMITTER_NAME": "orchestrator",
    "GIT_COMMITTER_EMAIL": "orchestrator@localhost",
}


def identity_env(repo: Path) -> dict[str, str]:
    """The user's own identity when git has one; a neutral one on a machine with none.

    A fresh CI box or the demo with an empty HOME has no identity, and a commit must never
    fail for want of a name.
    """
    if (
        "GIT_AUTHOR_EMAIL" in os.environ
        or git(repo, "config", "user.email", check=False).stdout.strip()
    ):
        return {}
    return dict(_FALLBACK_IDENTITY)


# Never committed for an agent, even where the repo's .gitignore forgets them: the setup
# command's virtualenv and the caches that running Python and pytest leave behind.
NEVER_COMMITTED = (
    ":(exclude,glob).venv/**",
    ":(exclude,glob)**/__pycache__/**",
    ":(exclude,glob).pytest_cache/**",
)


@dataclass(frozen=True)
class WorktreeState:
    """What a worktree holds after an agent's job."""

    head: str  # the commit checked out ("" in a repository with no commit yet)
    branch: str | None  # None on a detached HEAD
    changed: tuple[str, ...]  # files changed, added or deleted (ignored, never-committed aside)


def worktree_state(worktree: Path) -> WorktreeState:
    """The worktree's HEAD, its branch and its changed files, in one git call: this runs
    after every agent's job."""
    status = git(
        worktree,
        "status",
        "--porcelain=v2",
        "--branch",
        "-z",
        "--no-renames",
        "--untracked-files=all",
        "--",
        ".",
        *NEVER_COMMITTED,
    )
    head, branch, changed = "", None, []
    for entry in status.stdout.split("\0"):
        if entry.startswith("# branch.oid "):
            head = entry.removeprefix("# branch.oid ").replace("(initial)", "")
        elif entry.startswith("# branch.head "):
            name = entry.removeprefix("# branch.head ")
            branch = None if name == "(detached)" else name
        elif entry[:2] in ("1 ", "u "):
            # 1 XY sub mH mI mW hH hI path, and an unmerged entry has two more fields.
            changed.append(entry.split(" ", 8 if entry[0] == "1" else 10)[-1])
        elif entry.startswith("? "):
            changed.append(entry[2:])
    return WorktreeState(head, branch, tuple(changed))


def commit_paths(worktree: Path, paths: tuple[str, ...], message: str) -> str | None:
    """Commit exactly `paths` (from `worktree_state`; hooks skipped); the new commit, or None
    when there are none."""
    if not paths:
        return None
    # Exactly the listed paths: a pathspec naming an ignored folder would make `git add` fail.
    git(
        worktree,
        "add",
        "--all",
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        stdin_text="\0".join(paths),
    )
    git(
        worktree,
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
        extra_env=identity_env(worktree),
    )
    return head(worktree)


def head(repo: Path) -> str:
    """The commit checked out in `repo`."""
    return git(repo, "rev-parse", "HEAD").stdout.strip()


def file_at(repo: Path, rev: str, path: str) -> str | None:
    """The text of the file `path` in commit `rev`, or None when the commit has none; a
    GitError for an unknown commit, and for a `path` that is a link or a folder there."""
    listed = git(repo, "ls-tree", "--full-tree", rev, "--", path).stdout.strip()
    if not listed:
        return None
    mode, kind = listed.split()[:2]
    if kind != "blob" or mode == "120000":
        raise GitError(f"{path} in {rev} is not a plain file")
    return git(repo, "show", f"{rev}:{path}").stdout


def is_ancestor(repo: Path, commit: str, of: str) -> bool:
    """True when `commit` is `of` or in its history (False too for an unknown commit)."""
    return git(repo, "merge-base", "--is-ancestor", commit, of, check=False).ok
