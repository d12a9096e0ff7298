"""The status and queue documents: `orch status`, `orch queue`, GET /status and /queue."""

from __future__ import annotations

from typing import Any

from orchestrator.documents import queue_document, runner_document, status_document
from orchestrator.jobs.reserved import RESERVED_AGENTS
from orchestrator.pipeline.stages import Producer, TaskState
from orchestrator.settings import Settings
from orchestrator.store import Store

# The LLM agents the runners stand in for: their calls estimate the tokens the runners saved.
FALLBACK_ROLES = (Producer.TESTER.value, Producer.DEPLOYER.value)

# Runner blocks of /queue, keyed as scripts expect them (underscores, SPEC section 15).
RUNNER_KEYS = {agent.producer: agent.key for agent in RESERVED_AGENTS.values()}


def status_report(store: Store) -> dict[str, Any]:
    """Tasks by stage and state, jobs, blocked tasks, alerts, workers, determinization."""
    return status_document(
        store.counts(),
        store.queue(),
        store.list_alerts(open_only=True),
        store.list_workers(running_only=True),
        store.list_tasks(state=TaskState.BLOCKED, limit=100),
        store.determinization(),
        store.usage_by_stage(),
        store.average_tokens(FALLBACK_ROLES),
    )


def queue_report(store: Store, settings: Settings) -> dict[str, Any]:
    """Running, queued and deferred jobs; serial gates; one block per runner."""
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
