"""The status and queue documents: `orch status`, `orch queue`, GET /status and /queue."""

from __future__ import annotations

from typing import Any

from orchestrator.control import waits_for_person
from orchestrator.documents import queue_document, runner_document, status_document
from orchestrator.pipeline.stages import (
    FALLBACK_ROLES,
    RUNNER_STAGES,
    Producer,
    TaskState,
    runner_key,
)
from orchestrator.settings import Settings
from orchestrator.store import (
    Job,
    Queue,
    RunnerActivity,
    Store,
    average_tokens,
    usage_by_stage,
)

# Runner blocks of /queue, keyed as scripts expect them (underscores, docs/api.md), one
# per runner of the stage table.
RUNNER_KEYS = {producer: runner_key(producer) for producer in RUNNER_STAGES}


def status_report(store: Store) -> dict[str, Any]:
    """Tasks by stage and state, jobs, blocked tasks, alerts, workers, determinization (read
    in one transaction)."""
    with store.reading():
        return _status(store)


def _status(store: Store) -> dict[str, Any]:
    usage = store.usage()
    return status_document(
        store.counts(),
        store.list_alerts(open_only=True),
        store.list_workers(running_only=True),
        store.list_tasks(state=TaskState.BLOCKED, limit=100),
        store.determinization(usage),
        usage_by_stage(usage),
        # The LLM agents the runners stand in for: their calls estimate the tokens saved.
        average_tokens(usage, tuple(role.value for role in FALLBACK_ROLES)),
    )


# How many waiting tasks /queue lists (the oldest first); `orch task list --state blocked`
# has them all.
WAITING_LIMIT = 100


def queue_report(store: Store, settings: Settings) -> dict[str, Any]:
    """Running, queued and deferred jobs; serial gates; the tasks that wait for a person's
    verdict (no job runs for them); one block per runner (read in one transaction)."""
    with store.reading():
        return _queue(store, settings)


def _queue(store: Store, settings: Settings) -> dict[str, Any]:
    queue = store.queue()
    document = queue_document(queue)
    blocked = store.list_tasks(state=TaskState.BLOCKED, limit=WAITING_LIMIT)
    repos = {repo.name: repo for repo in store.list_repos()} if blocked else {}
    document["waiting_for_person"] = [
        {"task_id": task.id, "repo": task.repo, "stage": str(task.stage), "round": task.round}
        for task in blocked
        if waits_for_person(task, repos[task.repo], settings)
    ]
    outcomes = store.runner_outcomes()
    for producer, key in RUNNER_KEYS.items():
        config = settings.runner(key)
        document[key] = runner_document(
            config.enabled,
            config.repos,
            config.timeout_s,
            config.infra_retries,
            runner_activity(queue, producer, outcomes[producer]),
        )
    return document


def runner_activity(
    queue: Queue, producer: Producer, outcomes: list[tuple[Job, str | None]]
) -> RunnerActivity:
    """A runner's running and deferred jobs (the live jobs of its stage, from the queue the
    document already read) and its latest outcomes."""
    stage = RUNNER_STAGES[producer]
    return RunnerActivity(
        [item.job for item in queue.running if item.job.stage == stage],
        [item.job for item in queue.deferred if item.job.stage == stage],
        outcomes,
    )
