"""Rolling back a self deploy: a revert commit in the self checkout, then the task's failure.

Used by the supervisor (the new code did not come up healthy) and at boot (the service came
up on code other than the merged commit). Imported by the supervisor at its start, before
any merge, so a change that breaks `import orchestrator` is still reverted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.errors import GitError, OrchError
from orchestrator.runners.monitor import render_report
from orchestrator.selfhost.deploy_log import deploy_log
from orchestrator.settings import Settings
from orchestrator.store import SelfDeploy, Store
from orchestrator.workspace import git

log = logging.getLogger(__name__)


def roll_back(
    store: Store, settings: Settings, deploy: SelfDeploy, problem: str, health_url: str
) -> bool:
    """Revert the merge and fail the task (monitor_status: UNHEALTHY, an alert); False when
    the task already has its verdict (the in-service monitor judged it first): then nothing
    is reverted and nothing recorded."""
    if not store.self_deploy_open(deploy):
        log.warning("self deploy %s was judged already; not rolling it back", deploy.id)
        return False
    revert, how = revert_merge(store, deploy)
    reason = f"the self deploy of {deploy.merged_commit[:12]} {problem}; {how}"
    current = store.get_self_deploy(deploy.id) or deploy
    report = render_report(
        "UNHEALTHY",
        health_url,
        [],
        settings.monitor_window_s,
        settings.monitor_interval_s,
        note=reason + ".",
    )
    try:
        task = store.fail_self_deploy(
            current,
            deploy_log(current, None, "DEPLOYED", f"Rolled back: {how}."),
            report,
            reason,
            revert,
        )
    except OrchError:
        log.exception("could not record the rollback of self deploy %s", deploy.id)
        return False
    if task is None:
        # Judged between the check and the commit (a person cancelled it, say): the revert
        # stays, since the merged code did not come up healthy.
        log.warning("self deploy %s: reverted, but its task was judged meanwhile", deploy.id)
        return False
    return True


def revert_merge(store: Store, deploy: SelfDeploy) -> tuple[str | None, str]:
    """Revert the merge in the self checkout; (the revert commit, what happened)."""
    if deploy.old_commit == deploy.merged_commit:
        return None, "there was nothing merged to revert"
    repo = store.get_repo(store.get_task(deploy.task_id).repo)
    checkout = Path(repo.path)
    try:
        git.git(
            checkout,
            "revert",
            "--no-edit",
            "-m",
            "1",
            deploy.merged_commit,
            extra_env=git.identity_env(checkout),
        )
    except GitError as exc:
        git.git(checkout, "revert", "--abort", check=False)
        return None, f"the revert failed ({exc}): revert {deploy.merged_commit} by hand"
    revert = git.head(checkout)
    return revert, f"reverted by {revert[:12]}"
