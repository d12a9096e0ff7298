"""`16-deploy-log.md` of a self deploy, written at boot or by a rollback."""

from __future__ import annotations

from orchestrator.store import SelfDeploy

# What the log says of a deploy whose service stopped while its command ran.
COMMAND_UNFINISHED = "The service stopped before the deploy command finished."


def deploy_log(deploy: SelfDeploy, new_commit: str | None, status: str, note: str = "") -> str:
    """`16-deploy-log.md` of a self deploy."""
    lines = [
        "# Deploy log (self deploy)",
        "",
        f"deploy_status: {status}",
        f"failure_kind: {'none' if status == 'DEPLOYED' else 'deploy'}",
        "producer: deploy-finalizer",
        f"merged_commit: {deploy.merged_commit}",
        f"base_commit: {deploy.old_commit or '-'}",
        f"old_commit: {deploy.old_commit or '-'}",
        f"new_commit: {new_commit or '-'}",
        "",
        "The change was merged into the orchestrator's own checkout and the service restarted "
        "on it.",
    ]
    if note:
        lines += ["", note]
    if deploy.command_running:
        lines += ["", COMMAND_UNFINISHED]
    if deploy.note:
        lines += ["", deploy.note]
    return "\n".join(lines) + "\n"
