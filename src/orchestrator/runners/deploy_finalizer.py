"""deploy-finalizer: merges the task's branch into the repo's default branch, then deploys.

The merge is computed without a working tree (`git merge-tree --write-tree`), so a conflict
changes nothing anywhere. The default branch then moves to the merge commit: through a
fast-forward in the working copy that has it checked out (git refuses, and nothing changes,
when the user has uncommitted changes the merge would touch; untracked files are never
touched), or with a compare-and-swap of the ref when no working copy has it. Then the deploy
command, if any, runs on the merged code. A retry after a crash finds the branch already
merged and does not merge twice.

The self repo's deploy (selfhost/finalizer.py) is made of the same merge and deploy steps,
and passes `before_move`: it records the pending deploy (the base and merge commits) after
the merge commit exists and before the branch moves, so that no crash can leave a moved
branch without the record of what it moved from.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.pipeline.stages import Producer
from orchestrator.pipeline.verdicts import Judged
from orchestrator.redact import redact
from orchestrator.runners.base import (
    FailureKind,
    RunnerOutcome,
    RunnerRequest,
    output_tail,
    run_suite,
)
from orchestrator.workspace import checkout, git
from orchestrator.workspace.merging import MergeConflict, commit_of, merge_commit, tree_of

# In the deploy command's environment: how many times the deploy of this round started.
DEPLOY_ATTEMPT_VAR = "ORCH_DEPLOY_ATTEMPT"


@dataclass(frozen=True)
class Merge:
    """What the merge did."""

    base: str  # what the task's merge was made onto
    merged: str  # the task's merge commit (`base` when it is unknown: a person's merge)
    working_copy: str | None  # the working copy that was fast-forwarded, if any
    note: str
    head: str = ""  # the default branch now, the code to deploy (`merged` when empty)

    @property
    def to_deploy(self) -> str:
        """The commit the deploy command runs on: the default branch as it is now."""
        return self.head or self.merged


class MergeRefused(Exception):
    """The merge cannot be made without losing someone's work: a FAILED verdict."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def checked_out_at(repo: Path, branch: str) -> Path | None:
    """The working copy (main checkout or worktree) that has `branch` checked out, if any."""
    listing = git.git(repo, "worktree", "list", "--porcelain").stdout
    path: str | None = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            path = line.removeprefix("worktree ")
        elif line == f"branch refs/heads/{branch}" and path is not None:
            return Path(path)
    return None


def _merged(repo: Path, base: str, tip: str, message: str) -> str:
    """The merge commit the default branch moves to. When the tip already contains the base
    (the test-runner merged it in), its tree is exactly the tip's, the tree that was tested;
    a merge commit, not a fast-forward, keeps the default branch's first-parent history one
    tested commit per task (a fast-forward would bring a failed round's commits into it)."""
    try:
        return merge_commit(repo, base, tip, message)
    except MergeConflict as conflict:
        raise MergeRefused(FailureKind.CONFLICT, str(conflict)) from None


class Stale(Exception):
    """The merge would not ship the tree the suites judged: nothing moved; test it again."""


def why_retest(tested: Judged, base_now: str, tip_moved: bool, into: str) -> str:
    """Why the merge that would ship is not the tree that was tested (the caller compared
    the trees and found them different)."""
    if tip_moved:
        return f"the task's branch moved after it was tested (at {tested.tested[:12]})"
    if base_now != tested.base:
        return (
            f"{into} moved from {tested.base[:12]} to {base_now[:12]}, and the merge onto it "
            "is not the tree that was tested"
        )
    return (
        f"{into} is still at {tested.base[:12]}: the tasks ahead in the merge queue, which "
        "this one was tested on top of, did not land"
    )


def _to_ship(
    repo: Path, base: str, tip: str, message: str, tested: Judged | None, into: str
) -> str:
    """The merge commit the default branch moves to. Stale unless it has exactly the tree
    that was tested, including when it conflicts: the tested merge did not, so the base
    moved, and the re-test finds the conflict where a fix round can take it. No binding (an
    LLM tester's report) checks nothing, as before."""
    if tested is None:
        return _merged(repo, base, tip, message)
    try:
        merged: str | None = _merged(repo, base, tip, message)
    except MergeRefused:
        merged = None
    if merged is not None and tree_of(repo, merged) == (
        tested.tree or tree_of(repo, tested.tested)
    ):
        return merged
    contained = git.has_ref(repo, tested.tested) and git.is_ancestor(repo, tip, tested.tested)
    raise Stale(why_retest(tested, base, not contained, into))


BeforeMove = Callable[[str, str], None]  # (base, merged): called before the branch moves


def landed_merge(repo: Path, tip: str, into_ref: str) -> tuple[str, str] | None:
    """(base, merge) of the commit that brought `tip` into `into_ref`: the first commit of
    its first-parent history that contains `tip`, when it is a merge of it. None when the
    tip came in otherwise (a person's fast-forward): there is no merge of ours to name."""
    history = git.git(
        repo, "rev-list", "--first-parent", "--ancestry-path", "--reverse", f"{tip}..{into_ref}"
    ).stdout.split()
    if not history:
        return None
    parents = git.git(repo, "rev-list", "--parents", "-n", "1", history[0]).stdout.split()[1:]
    if len(parents) < 2 or not git.is_ancestor(repo, tip, parents[1]):
        return None
    return parents[0], history[0]


def _already(repo: Path, branch: str, into: str, tip: str, into_ref: str) -> Merge:
    """The branch is merged already (an earlier attempt merged it, then its job was run
    again): the merge that landed it, so that a rollback reverts that merge, not nothing."""
    landed = landed_merge(repo, tip, into_ref)
    head = commit_of(repo, into_ref)
    if landed is None:
        return Merge(head, head, None, f"{branch} is already part of {into}: nothing to merge")
    base, merged = landed
    note = f"{branch} was merged into {into} already, by {merged[:12]}: nothing more to merge"
    return Merge(base, merged, None, note, head)


def has_landed(repo: Path, commit: str, into: str) -> bool:
    """True when `commit` is part of the branch `into` (the merge moved it)."""
    return git.is_ancestor(repo, commit, f"refs/heads/{into}")


def merge_branch(
    repo: Path,
    branch: str,
    into: str,
    message: str,
    before_move: BeforeMove | None = None,
    tested: Judged | None = None,
) -> Merge:
    """Merge `branch` into `into`; MergeRefused for conflicts and dirty working copies, Stale
    when the merge is not what was `tested`."""
    base, tip = commit_of(repo, f"refs/heads/{into}"), commit_of(repo, f"refs/heads/{branch}")
    if git.is_ancestor(repo, tip, base):
        return _already(repo, branch, into, tip, f"refs/heads/{into}")
    merged = _to_ship(repo, base, tip, message, tested, into)
    checkout.check_fence()  # an attempt whose lease lapsed moves nothing
    if before_move is not None:
        before_move(base, merged)
    working_copy = checked_out_at(repo, into)
    if working_copy is None:
        git.git(repo, "update-ref", f"refs/heads/{into}", merged, base)
        return Merge(base, merged, None, f"{into} moved to the merge commit")
    moved = git.git(working_copy, "merge", "--ff-only", "--quiet", merged, check=False)
    if not moved.ok:
        reason = (moved.stderr or moved.stdout).strip()
        if "would be overwritten" in reason or "untracked working tree files" in reason:
            raise MergeRefused(
                FailureKind.DIRTY,
                f"{working_copy} has changes the merge would touch; nothing was changed: "
                + " ".join(reason.split()),
            )
        # The branch moved under us (someone committed): a passing fault, merge again later.
        raise GitError(f"cannot fast-forward {into} in {working_copy}: {reason}")
    return Merge(base, merged, str(working_copy), f"{into} fast-forwarded in {working_copy}")


def merge_remote(
    clone: Path, branch: str, into: str, message: str, tested: Judged | None = None
) -> Merge:
    """Merge `branch` into `into` on the remote: computed in our clone, then pushed.

    The push is a fast-forward of the remote's branch, so if someone pushed to it meanwhile
    it is refused (a GitError: the merge is computed again on the next attempt).
    """
    base = commit_of(clone, f"refs/remotes/origin/{into}")
    tip = commit_of(clone, f"refs/remotes/origin/{branch}")
    if git.is_ancestor(clone, tip, base):
        return _already(clone, branch, into, tip, f"refs/remotes/origin/{into}")
    merged = _to_ship(clone, base, tip, message, tested, into)
    checkout.push(clone, f"{merged}:refs/heads/{into}")  # fenced: a stale job never merges
    return Merge(base, merged, None, f"{into} of the remote moved to the merge commit (pushed)")


@dataclass(frozen=True)
class DeployRun:
    """The deploy command ran on the merged code: whether it passed, and what it said."""

    passed: bool
    kind: FailureKind
    note: str


class DeployFinalizer:
    """Merges, deploys and writes the deploy log.

    `run` is the whole stage for any repo but the self repo, whose deploy ends in a restart
    of the service (selfhost/finalizer.py builds it from `merge` and `deploy`)."""

    producer = Producer.DEPLOY_FINALIZER

    def run(self, request: RunnerRequest) -> RunnerOutcome:
        """Merge and deploy; a verdict (DEPLOYED, FAILED or RETEST) or a tool error."""
        if request.repo.is_self:
            # Merging our own code is only half of it: the restart must follow, and only
            # `orch serve` (under its supervisor) can restart the service.
            return RunnerOutcome.tool_error(
                "a self deploy runs in `orch serve`, which restarts on the merged code"
            )
        merge = self.merge(request)
        if not isinstance(merge, Merge):
            return merge
        if not request.repo.deploy_command:
            return self.verdict(request, True, FailureKind.NONE, "No deploy command.", merge)
        ran = self.deploy(request, merge)
        if not isinstance(ran, DeployRun):
            return ran
        return self.verdict(request, ran.passed, ran.kind, ran.note, merge)

    def merge(
        self, request: RunnerRequest, before_move: BeforeMove | None = None
    ) -> Merge | RunnerOutcome:
        """Merge the task's branch into the default branch: the merge, or the outcome that
        ends the stage without one (RETEST, a refused merge, a tool error)."""
        repo, task = request.repo, request.task
        message = f"Merge {task.branch}: {task.title} (task {task.id})"
        try:
            if repo.is_remote:
                clone = checkout.sync_clone(request.settings.home, repo)
                return merge_remote(
                    clone, task.branch, repo.default_branch, message, request.tested
                )
            if not Path(repo.path).is_dir():
                return RunnerOutcome.tool_error(f"the repo {repo.path} is missing")
            return merge_branch(
                Path(repo.path),
                task.branch,
                repo.default_branch,
                message,
                before_move,
                request.tested,
            )
        except Stale as stale:
            return self._retest(request, str(stale))
        except MergeRefused as refused:
            return self.verdict(request, False, refused.kind, str(refused), None)
        except GitError as exc:
            return RunnerOutcome.tool_error(str(exc))

    def deploy(self, request: RunnerRequest, merge: Merge) -> DeployRun | RunnerOutcome:
        """Run the repo's deploy command on the merged code: what it did, or the outcome that
        ends the stage without a verdict (stopped, or it could not run)."""
        command = request.repo.deploy_command or ""
        worktree = request.worktree
        if worktree.is_dir():  # deploy exactly the merged code
            git.git(worktree, "merge", "--ff-only", "--quiet", merge.to_deploy)
        # Only the attempt that holds the job deploys: one whose lease lapsed (paused, cut
        # off) stops here, and the attempt that took its place finds the branch merged.
        checkout.check_fence()
        # A worker killed while the command runs leaves its job to the next attempt, which
        # finds the branch merged and runs the command again: the attempt number lets a
        # deploy script tell (docs/runners.md, "deploy-finalizer").
        run = run_suite(
            shlex.split(command),
            request,
            request.settings.deploy_finalizer_timeout_s,
            variables={DEPLOY_ATTEMPT_VAR: str(request.stage_attempt)},
        )
        if run.cancelled:
            return RunnerOutcome(cancelled=True)
        if not run.executed or run.proc is None:
            return RunnerOutcome.tool_error(run.problem, run.proc)
        note = f"Deploy command: `{command}`, exit {run.proc.exit_code}.\n\n"
        note += output_tail(run.proc)
        return DeployRun(run.passed, run.failure_kind(FailureKind.DEPLOY), note)

    def _retest(self, request: RunnerRequest, why: str) -> RunnerOutcome:
        """Nothing merged: the task goes back to testing, in the same round, by code only."""
        note = (
            f"Nothing was merged: {why}. What ships must be what was tested, so the task goes "
            "back to testing, in the same round, to test the merge again."
        )
        text = render_log(request, None, FailureKind.NONE, note, None)
        return RunnerOutcome(artifact=redact(text, request.secrets))

    def verdict(
        self,
        request: RunnerRequest,
        deployed: bool,
        kind: FailureKind,
        note: str,
        merge: Merge | None,
    ) -> RunnerOutcome:
        """The deploy log as the stage's verdict."""
        text = render_log(request, deployed, kind, note, merge)
        return RunnerOutcome(artifact=redact(text, request.secrets))

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The FAILED log once the merge or deploy could not run `attempts` times."""
        note = f"Could not merge or deploy in {attempts} attempts; last reason: {reason}."
        return render_log(request, False, FailureKind.INFRA, note, None)


def render_log(
    request: RunnerRequest,
    deployed: bool | None,
    kind: FailureKind,
    note: str,
    merge: Merge | None,
) -> str:
    """`16-deploy-log.md`: the verdict key (None: RETEST), the commits, then what happened."""
    status = "RETEST" if deployed is None else "DEPLOYED" if deployed else "FAILED"
    tested = request.tested
    lines = [
        "# Deploy log",
        "",
        f"deploy_status: {status}",
        f"failure_kind: {kind}",
        "producer: deploy-finalizer",
        f"merged_commit: {merge.merged if merge else '-'}",
        f"tested_commit: {tested.tested if tested else '-'}",
        f"base_commit: {merge.base if merge else tested.base if tested else '-'}",
        "",
        f"Branch `{request.task.branch}` into `{request.repo.default_branch}` of "
        f"{request.repo.path}.",
    ]
    if merge is not None:
        lines += ["", merge.note + "."]
    lines += ["", note]
    return "\n".join(lines) + "\n"
