"""Where a task's files live under $ORCH_HOME. Every path is built from a validated id."""

from __future__ import annotations

from pathlib import Path

from orchestrator.pipeline.names import check_artifact_name, check_task_id


def worktree_dir(home: Path, task_id: str) -> Path:
    """The task's git worktree."""
    return home / "worktrees" / check_task_id(task_id)


def artifact_dir(home: Path, task_id: str) -> Path:
    """The folder agents write the task's artifacts into (`ORCH_ARTIFACT_DIR`)."""
    return home / "tasks" / check_task_id(task_id)


def artifact_path(home: Path, task_id: str, name: str) -> Path:
    """The file of one artifact (`ORCH_ARTIFACT_PATH`)."""
    return artifact_dir(home, task_id) / check_artifact_name(name)


def log_dir(home: Path, task_id: str) -> Path:
    """The folder of a task's job logs."""
    return home / "logs" / check_task_id(task_id)


def task_branch(task_id: str) -> str:
    """The branch a task's work happens on."""
    return f"orch/{check_task_id(task_id)}"
