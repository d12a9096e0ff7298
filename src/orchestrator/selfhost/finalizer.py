"""The self-deploy-finalizer: the deploy of the orchestrator's own repo, ending in a restart.

It is the deploy-finalizer's merge and deploy command, with one difference: when they pass,
the verdict is not written here. The service must first restart on the merged code, and the
restarted process writes the deploy log (selfhost/boot.py), so the outcome is a typed
`Restart` instead of an artifact. Anything else (RETEST, a refused merge, a failed deploy
command, a tool error) is an ordinary runner outcome for the ordinary path.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.pipeline.stages import Producer
from orchestrator.runners.base import RunnerOutcome, RunnerRequest
from orchestrator.runners.deploy_finalizer import BeforeMove, DeployFinalizer, DeployRun, Merge


@dataclass(frozen=True)
class Restart:
    """A change merged into the service's own code: the service restarts on it, and the
    restarted process writes the deploy verdict (selfhost/boot.py)."""

    merged: str  # the merge commit the service restarts on
    base: str  # the default branch it was merged onto
    note: str  # what the deploy log will say of the merge and the deploy command


class SelfDeployFinalizer:
    """Merges the self repo's task, runs its deploy command, and asks for the restart."""

    producer = Producer.DEPLOY_FINALIZER

    def __init__(self) -> None:
        self._finalizer = DeployFinalizer()

    def run(self, request: RunnerRequest, before_move: BeforeMove) -> RunnerOutcome | Restart:
        """Merge (recording the pending deploy through `before_move` before the branch
        moves) and deploy: a `Restart` when both passed, else the stage's outcome."""
        merge = self._finalizer.merge(request, before_move)
        if not isinstance(merge, Merge):
            return merge
        if not request.repo.deploy_command:
            return _restart(merge, "No deploy command: the restart is the deploy.")
        ran = self._finalizer.deploy(request, merge)
        if not isinstance(ran, DeployRun):
            return ran
        if ran.passed:
            return _restart(merge, ran.note)
        return self._finalizer.verdict(request, False, ran.kind, ran.note, merge)

    def infra_failure(self, request: RunnerRequest, reason: str, attempts: int) -> str:
        """The FAILED log once the merge or deploy could not run `attempts` times."""
        return self._finalizer.infra_failure(request, reason, attempts)


def _restart(merge: Merge, note: str) -> Restart:
    return Restart(merge.merged, merge.base, f"{merge.note}.\n\n{note}")
