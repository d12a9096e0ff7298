"""Where a task's work happens on this machine: its repo's git directory and its worktree.

A repo registered by the path of a working copy is used in place: tasks branch from it and
their worktrees hang off it (one machine). A repo registered by a URL or a bare repository
is a remote: each worker keeps its own bare clone under `$ORCH_HOME/repos/`, creates a
task's worktree locally from the remote's `orch/<id>` before a job, and pushes the branch
after a job that changed it. The remote is the truth; a worktree holds nothing that is not
pushed, so any worker on any machine can take the next job.

Pushes are fenced like database writes: a worker that lost its job (paused, cut off, its
lease reclaimed) must not overwrite the work of the attempt that replaced it. Before each
push the job's attempt is checked against the database and its lease renewed (`fenced`):
an attempt whose lease lapsed pushes nothing, even before another worker took the job. The
push itself is stopped the moment the job is (its lease lapsing without a renewal stops
it), and a task branch is pushed only over the tip this worker checked out
(`--force-with-lease`), which also covers a worker paused between the check and the push.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.proc import CancelToken
from orchestrator.store import Repo, Task
from orchestrator.workspace import git, layout

log = logging.getLogger(__name__)

_FETCH = "+refs/heads/*:refs/remotes/origin/*"
# Per worktree (git keeps refs/worktree/* apart for each one): the branch tip this machine
# last checked out or pushed. Another job's fetch into the shared clone cannot move it.
_SEEN = "refs/worktree/orch-seen"
_clone_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


@dataclass(frozen=True)
class _Fence:
    check: Callable[[], None]  # raises StaleState when the attempt may no longer act
    stop: CancelToken | None  # set when the job is stopped (or its lease lapses)


# The fence of the job this thread runs.
_fence: ContextVar[_Fence | None] = ContextVar("orch_push_fence", default=None)


@contextmanager
def fenced(check: Callable[[], None], stop: CancelToken | None = None) -> Iterator[None]:
    """Inside the block (one job, this thread), every push first runs `check`, and is
    killed once `stop` is set; `check_fence` runs it before other irreversible steps."""
    token = _fence.set(_Fence(check, stop))
    try:
        yield
    finally:
        _fence.reset(token)


def check_fence() -> None:
    """StaleState unless the running job may still act (a no-op outside `fenced`)."""
    fence = _fence.get()
    if fence is not None:
        fence.check()


def push(cwd: Path, refspec: str, *, lease: tuple[str, str] | None = None) -> None:
    """Push `refspec` to origin, once the running job's fence (if any) allows it.

    `lease` is (remote ref, the commit we expect it at): git refuses the push when the
    remote's ref has moved since (a GitError).
    """
    fence = _fence.get()
    check_fence()  # StaleState: the attempt may not act any more; push nothing
    options = [f"--force-with-lease={lease[0]}:{lease[1]}"] if lease else []
    stop = fence.stop if fence is not None else None
    git.git(cwd, "push", "--quiet", *options, "origin", refspec, cancel=stop)


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
    _note_seen(worktree, "HEAD")


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
    """The task with a worktree on this machine, at the tip of its branch (before a job).

    A remote repo's worktree made here has not had the repo's setup command, so the task
    returned says so (`setup_done_at` None) and the job runs it first.
    """
    if not repo.is_remote:
        if (Path(task.worktree) / ".git").exists():
            back_on_branch(Path(task.worktree), task.branch)
        return task
    clone = sync_clone(home, repo)
    worktree = layout.worktree_dir(home, task.id)
    tip = f"refs/remotes/origin/{task.branch}"
    if not git.has_ref(clone, tip):
        raise GitError(f"the remote has no branch {task.branch}")
    made = not (worktree / ".git").exists()
    if made:
        git.git(clone, "worktree", "prune")
        if git.has_branch(clone, task.branch):
            git.git(clone, "worktree", "add", "--quiet", "--force", str(worktree), task.branch)
        else:
            git.add_worktree(clone, worktree, task.branch, tip)
    back_on_branch(worktree, task.branch)
    # The remote is the truth: whatever a crashed job left here and never pushed is dropped.
    git.git(worktree, "reset", "--quiet", "--hard", tip)
    _note_seen(worktree, "HEAD")
    return replace(task, worktree=str(worktree), setup_done_at=None if made else task.setup_done_at)


def restore(repo: Repo, task: Task) -> bool:
    """Make a local task's worktree again from its branch when it is gone (`orch gc` removed
    a failed task's, then a person retried it); True when it was made. A remote repo's is
    made by `prepare`, on whichever machine runs the next job."""
    worktree = Path(task.worktree)
    if repo.is_remote or (worktree / ".git").exists():
        return False
    root = Path(repo.path)
    if not git.has_branch(root, task.branch):
        raise GitError(f"the branch {task.branch} is gone from {root}: nothing to retry from")
    git.git(root, "worktree", "prune")
    git.git(root, "worktree", "add", "--quiet", str(worktree), task.branch)
    return True


def publish(repo: Repo, task: Task) -> None:
    """Push the task's branch after a job committed to it (remote repos only).

    Fenced, and only over the tip `prepare` checked out: if another attempt pushed since,
    the push is refused (a GitError) rather than overwriting its work.
    """
    if not repo.is_remote:
        return
    worktree = Path(task.worktree)
    seen = git.git(worktree, "rev-parse", "--verify", "--quiet", _SEEN, check=False)
    if not seen.ok:
        raise GitError(f"{worktree} was not prepared for a job: refusing to push blindly")
    remote_ref = f"refs/heads/{task.branch}"
    push(worktree, f"HEAD:{remote_ref}", lease=(remote_ref, seen.stdout.strip()))
    _note_seen(worktree, "HEAD")


def keep_work(repo: Repo, task: Task, start: str, message: str) -> str:
    """After an agent's job: commit what it left, and publish whatever moved the branch (its
    own commits too); the branch's new tip.

    An agent that left the worktree off its branch (another branch, a detached HEAD) or
    rewrote the history below `start` is refused with a GitError that says so; nothing is
    reset, and its HEAD is kept under a ref of its own, so none of its work is lost, even
    when a remote repo's next attempt starts over from the remote's tip.
    """
    worktree = Path(task.worktree)
    # As few git calls as the answer needs: this runs after every agent's job.
    state = git.worktree_state(worktree)
    tip, on = state.head, state.branch
    problem = None
    if on != task.branch:
        where = f"on branch {on}" if on else f"on a detached HEAD at {tip[:12]}"
        problem = f"the agent left the worktree {where}, not on {task.branch}"
    elif tip != start and not git.is_ancestor(worktree, start, tip):
        problem = f"the agent rewrote {task.branch} below {start[:12]}, where its job started"
    if problem is not None:
        kept = f"refs/orch/kept/{task.id}/{tip[:12]}"
        git.git(worktree, "update-ref", kept, tip)
        raise GitError(f"{problem}; nothing was changed, and its HEAD is kept as {kept}")
    tip = git.commit_paths(worktree, state.changed, message) or tip
    if tip != start:
        publish(repo, task)
    return tip


def _note_seen(worktree: Path, commit: str) -> None:
    git.git(worktree, "update-ref", _SEEN, commit)


def retire(home: Path, repo: Repo, task: Task) -> None:
    """Remove the task's worktree on this machine (its branch stays)."""
    if repo.is_remote:
        clone = clone_dir(home, repo)
        if clone.exists():
            git.remove_worktree(clone, layout.worktree_dir(home, task.id))
        return
    git.remove_worktree(Path(repo.path), Path(task.worktree))


def retire_quietly(home: Path, repo: Repo, task: Task) -> None:
    """`retire`, never fatal: a worktree that cannot be removed is logged and left for gc."""
    try:
        retire(home, repo, task)
    except GitError as exc:
        log.warning("task %s: could not remove its worktree: %s", task.id, exc)


# Set while a runner has the task's worktree detached at a commit it tests (per worktree).
DETACHED_FOR_TEST = "refs/worktree/orch-tested"


@contextmanager
def checked_out(worktree: Path, commit: str, branch: str) -> Iterator[None]:
    """Run with `commit` checked out, detached, in the task's own worktree, so the worktree's
    environment (its .venv, an editable install) runs that very tree; the branch is checked
    out again afterwards, or by `back_on_branch` before the next job when a crash came first."""
    if commit == git.head(worktree):
        yield
        return
    git.git(worktree, "update-ref", DETACHED_FOR_TEST, commit)
    git.git(worktree, "checkout", "--quiet", "--detach", commit)
    try:
        yield
    finally:
        back_on_branch(worktree, branch)


def back_on_branch(worktree: Path, branch: str) -> None:
    """Put the worktree back on its branch if a runner left it detached at a tested commit.
    Only that case: a worktree an agent left detached is the agent's, and is kept as it is
    (`checkout.keep_work` refuses it)."""
    if not git.has_ref(worktree, DETACHED_FOR_TEST):
        return
    if git.current_branch(worktree) is None:
        # What a suite changed in tracked files belongs to the tested commit, not the branch.
        git.git(worktree, "checkout", "--quiet", "--force", branch)
    git.git(worktree, "update-ref", "-d", DETACHED_FOR_TEST)
