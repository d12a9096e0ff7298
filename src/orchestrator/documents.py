"""JSON documents of records: the one shape the CLI's --json and the HTTP API both print."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.store import Alert, Event, Repo, Task


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def repo_document(repo: Repo) -> dict[str, Any]:
    """A repo and its settings."""
    return {
        "name": repo.name,
        "path": repo.path,
        "default_branch": repo.default_branch,
        "test_target": repo.test_target,
        "test_command": repo.test_command,
        "staging_command": repo.staging_command,
        "deploy_command": repo.deploy_command,
        "health_url": repo.health_url,
        "setup_command": repo.setup_command,
        "skip_stages": sorted(repo.skip_stages),
        "self": repo.is_self,
        "created_at": _time(repo.created_at),
    }


def event_document(event: Event) -> dict[str, Any]:
    """One stage move."""
    return {
        "from_stage": event.from_stage,
        "to_stage": event.to_stage,
        "verdict": event.verdict,
        "producer": event.producer.value,
        "round": event.round,
        "at": _time(event.at),
    }


def task_document(
    task: Task, artifacts: list[str], events: list[Event] | None = None
) -> dict[str, Any]:
    """A task; with its events when they are given (task show), without for lists."""
    document: dict[str, Any] = {
        "id": task.id,
        "repo": task.repo,
        "title": task.title,
        "description": task.description,
        "stage": task.stage.value,
        "state": task.state.value,
        "round": task.round,
        "branch": task.branch,
        "worktree": task.worktree,
        "reason": task.reason,
        "created_at": _time(task.created_at),
        "updated_at": _time(task.updated_at),
        "artifacts": artifacts,
    }
    if events is not None:
        document["events"] = [event_document(event) for event in events]
    return document


def alert_document(alert: Alert) -> dict[str, Any]:
    """An alert."""
    return {
        "id": alert.id,
        "task_id": alert.task_id,
        "kind": alert.kind,
        "message": alert.message,
        "created_at": _time(alert.created_at),
        "acknowledged_at": _time(alert.acknowledged_at),
    }
