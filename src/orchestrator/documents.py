"""JSON documents of records: the one shape the CLI's --json and the HTTP API both print."""

from __future__ import annotations

from collections.abc import Set
from datetime import datetime
from typing import Any

from orchestrator.pipeline.pipelines import Pipeline
from orchestrator.pipeline.stages import (
    STAGE_ORDER,
    Producer,
    Stage,
    StageKind,
    StageSpec,
    artifact_for,
)
from orchestrator.pipeline.verdicts import Judged
from orchestrator.redact import redact
from orchestrator.store import (
    Alert,
    Artifact,
    Counts,
    Determinization,
    Event,
    Job,
    Queue,
    QueuedJob,
    Repo,
    RunnerActivity,
    StageUsage,
    Task,
    Worker,
)


def json_key(name: str) -> str:
    """A stage or producer name as a JSON key: underscores (docs/api.md), `test-runner` ->
    `test_runner`. Values keep the names as they are."""
    return name.replace("-", "_")


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
        "junit_path": repo.junit_path,
        "skip_stages": sorted(repo.skip_stages),
        "self": repo.is_self,
        "remote": repo.is_remote,
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
    task: Task,
    artifacts: list[str],
    events: list[Event] | None = None,
    *,
    secrets: tuple[str, ...],
    versions: list[Artifact] | None = None,
) -> dict[str, Any]:
    """A task; with its events when they are given (task show), without for lists.

    The description is stored as the user wrote it, and served with `secrets` masked.
    """
    document: dict[str, Any] = {
        "id": task.id,
        "repo": task.repo,
        "title": task.title,
        "description": redact(task.description, secrets),
        "stage": str(task.stage),
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
        document["pipeline"] = list(task.pipeline.order)
    if versions is not None:
        document["judged_commits"] = judged_commits(versions)
    return document


def pipeline_document(pipeline: Pipeline, skipped: Set[str]) -> dict[str, Any]:
    """A pipeline as `orch repo show --pipeline --json` prints it: where it comes from, and
    each stage in order with who produces it and where its verdicts go."""
    return {
        "source": "orch.toml" if pipeline.declared else "built-in",
        "stages": [_stage_document(spec, spec.stage in skipped) for spec in pipeline],
    }


def _stage_document(spec: StageSpec, skipped: bool) -> dict[str, Any]:
    runner = spec.runner or (Producer.CHECK_RUNNER if spec.kind is StageKind.CHECK else None)
    document: dict[str, Any] = {
        "name": str(spec.stage),
        "kind": spec.kind.value,
        "runner": runner.value if runner else None,
        "agent": spec.llm_role.value if spec.llm_role else None,
        "person": spec.kind is StageKind.APPROVAL,
        "artifact": spec.artifact,
        "verdict_key": spec.verdict_keys[0],
        "on_pass": spec.on_pass or "done",
        "on_fail": spec.on_fail.value,
        "skipped": skipped,
    }
    if spec.kind is StageKind.CHECK:
        document |= {"command": list(spec.command), "timeout_s": spec.timeout_s}
    return document


# The artifacts whose verdicts name the commits they judged (the runners' reports).
JUDGED_ARTIFACTS = frozenset(
    artifact_for(stage) for stage in (Stage.TESTING, Stage.DEPLOY_STAGING, Stage.DEPLOY)
)


def judged_commits(versions: list[Artifact]) -> list[dict[str, Any]]:
    """Per round, the commits each runner verdict judged (`tested_commit:`, `base_commit:`,
    and `tested_tree:`, the tree the deploy compares; None in reports written before it)."""
    found = []
    for artifact in versions:
        judged = Judged.read(artifact.text) if artifact.name in JUDGED_ARTIFACTS else None
        if judged is not None:
            found.append(
                {
                    "round": artifact.round,
                    "artifact": artifact.name,
                    "producer": artifact.producer.value,
                    "tested_commit": judged.tested,
                    "base_commit": judged.base,
                    "tested_tree": judged.tree,
                }
            )
    return found


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


def job_document(job: Job) -> dict[str, Any]:
    """A job: what ran, where, how it ended, what it cost."""
    return {
        "id": job.id,
        "task_id": job.task_id,
        "stage": str(job.stage),
        "round": job.round,
        "producer": job.producer,
        "status": job.status.value,
        "attempt": job.attempt,
        "infra_failures": job.infra_failures,
        "agent_failures": job.agent_failures,
        "internal_failures": job.internal_failures,
        "not_before": _time(job.not_before),
        "worker_id": job.worker_id,
        "host": job.host,
        "pid": job.pid,
        "lease_expires_at": _time(job.lease_expires_at),
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "outcome": job.outcome,
        "error_kind": job.error_kind,
        "error_message": job.error_message,
        "exit_code": job.exit_code,
        "backend": job.backend,
        "tokens_in": job.tokens_in,
        "tokens_out": job.tokens_out,
        "cost_usd": job.cost_usd,
        "turns": job.turns,
        "duration_s": job.duration_s,
    }


def _queued(item: QueuedJob) -> dict[str, Any]:
    return {**job_document(item.job), "repo": item.repo, "title": item.title}


def queue_document(queue: Queue) -> dict[str, Any]:
    """Running, queued and deferred jobs, and the serial gate of every repo."""
    return {
        "running": [_queued(item) for item in queue.running],
        "queued": [_queued(item) for item in queue.queued],
        "deferred": [_queued(item) for item in queue.deferred],
        "serial_gate": {
            repo: {
                "holder": gate.holder,
                "waiting": list(gate.waiting),
                "tested": {
                    task_id: {"tested_commit": judged.tested, "base_commit": judged.base}
                    for task_id, judged in gate.judged.items()
                },
            }
            for repo, gate in queue.serial_gate.items()
        },
    }


def worker_document(worker: Worker) -> dict[str, Any]:
    """A worker process."""
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "started_at": _time(worker.started_at),
        "heartbeat_at": _time(worker.heartbeat_at),
        "stopped_at": _time(worker.stopped_at),
        "state": worker.state.value,  # running, stopped, or lost (no heartbeat for a lease)
    }


def artifact_document(artifact: Artifact) -> dict[str, Any]:
    """One stored version of an artifact, without its text."""
    return {
        "name": artifact.name,
        "round": artifact.round,
        "producer": artifact.producer.value,
        "job_id": artifact.job_id,
        "created_at": _time(artifact.created_at),
        "size": len(artifact.text),
    }


def determinization_document(
    figures: Determinization,
    usage: dict[str, StageUsage] | None = None,
    mean_fallback_tokens: float | None = None,
) -> dict[str, Any]:
    """Verdicts by code versus by LLM agents, LLM calls avoided, and what agents spent.

    The tokens the runners saved are estimated from the LLM tester's and deployer's own
    calls when there are any; without such calls the estimate is "unknown", never invented.
    """
    usage = usage or {}
    stages = [s for s in STAGE_ORDER if s in figures.verdicts_by_stage or s in usage]
    estimate = (
        round(figures.llm_calls_avoided * mean_fallback_tokens)
        if mean_fallback_tokens is not None
        else "unknown"
    )
    return {
        "verdicts_deterministic": figures.deterministic,
        "verdicts_llm": figures.by_llm,
        "verdicts_by_producer": {
            json_key(producer): count for producer, count in figures.verdicts_by_producer.items()
        },
        "llm_calls_avoided": figures.llm_calls_avoided,
        "tokens_avoided_estimate": estimate,
        "agent_calls": figures.agent_calls,
        "tokens_in": figures.tokens_in,
        "tokens_out": figures.tokens_out,
        "cost_usd": round(figures.cost_usd, 6),
        "by_stage": {
            json_key(stage.value): {
                "verdicts_by_code": figures.verdicts_by_stage.get(stage, {}).get("code", 0),
                "verdicts_by_llm": figures.verdicts_by_stage.get(stage, {}).get("llm", 0),
                "agent_calls": usage[stage].calls if stage in usage else 0,
                "tokens_in": usage[stage].tokens_in if stage in usage else 0,
                "tokens_out": usage[stage].tokens_out if stage in usage else 0,
                "cost_usd": round(usage[stage].cost_usd, 6) if stage in usage else 0.0,
            }
            for stage in stages
        },
    }


def runner_document(
    enabled: bool,
    repos: frozenset[str],
    timeout_s: float | None,
    budget: int,
    activity: RunnerActivity,
) -> dict[str, Any]:
    """One runner's block of /queue."""
    return {
        "enabled": enabled,
        "repos": sorted(repos),
        "timeout_s": timeout_s,
        "infra_budget": budget,
        "running": [job_document(j) for j in activity.running],
        "deferred": [job_document(j) for j in activity.deferred],
        "last_outcomes": [
            {
                "job_id": job.id,
                "task_id": job.task_id,
                "round": job.round,
                "outcome": job.outcome,
                "verdict": verdict,
                "error": job.error_message,
                "finished_at": _time(job.finished_at),
            }
            for job, verdict in activity.last
        ],
    }


def status_document(
    counts: Counts,
    alerts: list[Alert],
    workers: list[Worker],
    blocked: list[Task],
    figures: Determinization | None = None,
    usage: dict[str, StageUsage] | None = None,
    mean_fallback_tokens: float | None = None,
) -> dict[str, Any]:
    """The whole pipeline at a glance."""
    return {
        "tasks": {
            "by_state": counts.by_state,
            "by_stage": {json_key(stage): n for stage, n in counts.by_stage.items()},
        },
        "jobs": counts.jobs,
        "blocked": [{"id": t.id, "stage": str(t.stage), "reason": t.reason} for t in blocked],
        "alerts": {"open": len(alerts), "latest": [alert_document(a) for a in alerts[:20]]},
        "workers": [worker_document(w) for w in workers],
        **(
            {"determinization": determinization_document(figures, usage, mean_fallback_tokens)}
            if figures
            else {}
        ),
    }
