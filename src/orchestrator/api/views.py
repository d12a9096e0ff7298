"""The documents /status and /queue serve (also used by the dashboard)."""

from __future__ import annotations

from typing import Any

from orchestrator.api.state import ApiState
from orchestrator.documents import queue_document, runner_document, status_document
from orchestrator.jobs.reserved import RESERVED_AGENTS
from orchestrator.pipeline.stages import TaskState

# Runner blocks of /queue, keyed as scripts expect them (underscores, SPEC section 15).
RUNNER_KEYS = {agent.producer: agent.key for agent in RESERVED_AGENTS.values()}


def status_view(state: ApiState) -> dict[str, Any]:
    """GET /status: tasks by stage and state, jobs, alerts, workers, determinization."""
    store = state.store
    return status_document(
        store.counts(),
        store.queue(),
        store.list_alerts(open_only=True),
        store.list_workers(running_only=True),
        store.list_tasks(state=TaskState.BLOCKED, limit=100),
        store.determinization(),
    )


def queue_view(state: ApiState) -> dict[str, Any]:
    """GET /queue: running, queued and deferred jobs; serial gates; one block per runner."""
    store, settings = state.store, state.settings
    document = queue_document(store.queue())
    for producer, key in RUNNER_KEYS.items():
        timeout = getattr(settings, f"{key}_timeout_s", None)
        if key == "post_deploy_monitor":
            timeout = settings.monitor_window_s
        document[key] = runner_document(
            getattr(settings, f"{key}_enabled"),
            getattr(settings, f"{key}_repos"),
            timeout,
            getattr(settings, f"{key}_infra_retries"),
            store.runner_activity(producer),
        )
    return document
