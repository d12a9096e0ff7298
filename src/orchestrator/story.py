"""A task's story in a few lines: what `orch demo` prints at its end and `orch task show`
prints for any task. Read from the records only (no I/O beyond the store), so every edge
tells it the same way.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from orchestrator.pipeline.stages import Producer, TaskState
from orchestrator.pipeline.verdicts import parse_verdict_keys
from orchestrator.store import Artifact, Event, Job, JobStatus, Store, Task

Row = tuple[str, str]


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{max(0.0, (end - start).total_seconds()):.1f}s"


def verdicts_of(events: list[Event]) -> list[Event]:
    """The events that record a verdict (every one but intake)."""
    return [e for e in events if e.from_stage is not None]


def path_row(verdicts: list[Event]) -> Row:
    """The stages the task went through, in order."""
    if not verdicts:
        return ("path", "-")
    return ("path", " → ".join([verdicts[0].from_stage or ""] + [e.to_stage for e in verdicts]))


def _latest(versions: list[Artifact], name: str, round_: int | None = None) -> str:
    """The text of the newest version of an artifact (of a round), or empty."""
    found = [a for a in versions if a.name == name and round_ in (None, a.round)]
    return found[-1].text if found else ""


def caught_row(versions: list[Artifact], verdicts: list[Event]) -> Row | None:
    """The first round the test-runner failed, and the first failing test it named."""
    caught = next(
        (e for e in verdicts if e.producer is Producer.TEST_RUNNER and e.verdict == "FAIL"), None
    )
    if caught is None:
        return None
    report = _latest(versions, "13-test-report.md", caught.round)
    failing = [line[2:] for line in report.splitlines() if line.startswith("- `")]
    first = failing[0] if failing else "see 13-test-report.md"
    return ("caught", f"the test-runner failed round {caught.round}: {first}")


def merged_commit(versions: list[Artifact]) -> str | None:
    """The commit the deploy-finalizer merged, read from the latest deploy log, when it did."""
    keys = parse_verdict_keys(_latest(versions, "16-deploy-log.md"))
    if keys.get("deploy_status") != ("DEPLOYED",):
        return None
    merged = keys.get("merged_commit", ("-",))[0]
    return None if merged == "-" else merged


def verdicts_row(verdicts: list[Event]) -> Row:
    """How many verdicts code gave, by which runner, and how many agents gave."""
    by_code = [e.producer for e in verdicts if not e.producer.is_llm]
    by_agent = [e for e in verdicts if e.producer.is_llm]
    counts = ", ".join(f"{p} ×{by_code.count(p)}" for p in dict.fromkeys(by_code))
    return ("verdicts", f"{len(by_code)} by code ({counts or '-'}); {len(by_agent)} by agents")


def now_row(task: Task, jobs: list[Job], now: datetime) -> Row | None:
    """What happens to an active task right now: a job running, queued, or waiting to retry."""
    if task.state is not TaskState.ACTIVE:
        return None
    live = next((j for j in reversed(jobs) if j.status in (JobStatus.RUNNING,)), None)
    if live is not None:
        return ("now", f"{live.stage} running for {_seconds(live.started_at, now)}")
    waiting = next((j for j in reversed(jobs) if j.status is JobStatus.DEFERRED), None)
    if waiting is not None and waiting.not_before is not None:
        due = (waiting.not_before - now).total_seconds()
        when = f"retries in {due:.0f}s" if due > 0 else "due to retry now"
        why = f"{waiting.error_kind}: {waiting.error_message}" if waiting.error_kind else "-"
        return ("now", f"{waiting.stage} waits ({why}); {when}")
    return ("now", f"{task.stage} queued for a worker")


def rounds_row(versions: list[Artifact]) -> Row:
    """The artifacts, by the round that wrote them."""
    by_round: dict[int, list[str]] = {}
    for artifact in versions:
        by_round.setdefault(artifact.round, []).append(artifact.name)
    text = "; ".join(f"round {r}: {', '.join(names)}" for r, names in sorted(by_round.items()))
    return ("artifacts", text or "-")


def task_story(
    store: Store,
    task: Task,
    events: list[Event],
    jobs: list[Job],
    now: datetime,
    versions: list[Artifact] | None = None,
) -> list[Row]:
    """The task's story: how it ended (or where it is), its path, what the test-runner
    caught, what was merged, who gave the verdicts, its artifacts by round (`versions`)
    and its worktree."""
    verdicts = verdicts_of(events)
    stored = versions if versions is not None else store.artifact_versions(task.id)
    took = _seconds(events[0].at if events else None, events[-1].at if events else None)
    rows: list[Row] = [
        ("task", f"{task.id} {task.state} after {task.round} round(s), {took} so far"
         if task.state is TaskState.ACTIVE
         else f"{task.id} ended {task.state} after {task.round} round(s), {took}"),
        path_row(verdicts),
    ]  # fmt: skip
    for row in (
        now_row(task, jobs, now),
        caught_row(stored, verdicts),
    ):
        if row is not None:
            rows.append(row)
    merged = merged_commit(stored)
    if merged is not None:
        rows.append(("merged", f"{merged[:12]} into the default branch of {task.repo}"))
    rows.append(verdicts_row(verdicts))
    if versions is not None:
        rows.append(rounds_row(versions))
    worktree = Path(task.worktree)
    kept = worktree.is_dir()
    rows.append(
        ("worktree", str(worktree) if kept else f"removed (the branch {task.branch} stays)")
    )
    if task.reason:
        rows.append(("reason", task.reason))
    return rows
