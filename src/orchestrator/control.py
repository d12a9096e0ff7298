"""What people do to tasks: cancel, resume and retry. Shared by the CLI and the API."""

from __future__ import annotations

import logging
from pathlib import Path

from orchestrator.errors import GitError
from orchestrator.pipeline.names import check_task_id
from orchestrator.proc import host_identity, terminate_group
from orchestrator.settings import Settings
from orchestrator.store import Store, Task
from orchestrator.workspace import checkout

log = logging.getLogger(__name__)


def retire_worktree(store: Store, home: Path, task: Task) -> None:
    """Remove a finished task's worktree on this machine (its branch stays); never fatal."""
    try:
        checkout.retire(home, store.get_repo(task.repo), task)
    except GitError as exc:
        log.warning("task %s: could not remove its worktree: %s", task.id, exc)


def cancel_task(store: Store, settings: Settings, task_id: str) -> Task:
    """Cancel a task: its running job's processes are killed and its worktree removed."""
    task, job = store.cancel_task(check_task_id(task_id))
    if job is not None and job.pgid is not None and job.host == host_identity():
        # The worker would notice at its next heartbeat; kill now so the agent stops at once.
        # (terminate_group checks the recorded start time: a finished attempt's pid that was
        # reused since is never killed.)
        marker = job.marker or f"{job.worker_id}.{job.id}.{job.attempt}"
        terminate_group(job.pgid, job.proc_started_at, marker, settings.kill_grace_s)
    retire_worktree(store, settings.home, task)
    return task


def resume_task(store: Store, task_id: str) -> Task:
    """Send a blocked task back into its stage."""
    return store.resume_task(check_task_id(task_id))


def retry_task(store: Store, task_id: str) -> Task:
    """Give a failed task a new development round with a fresh budget of returns."""
    return store.retry_task(check_task_id(task_id))
