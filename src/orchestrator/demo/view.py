"""What the demo shows: the task's stages live, then a summary of what happened."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, Group, RenderableType
from rich.text import Text

from orchestrator.pipeline.stages import Producer
from orchestrator.store import Event, Job, JobStatus, Store, Task

MARKS = {"passed": ("✔", "green"), "failed": ("✘", "red"), "blocked": ("■", "yellow")}


@dataclass(frozen=True)
class Snapshot:
    """The task as the view last read it."""

    task: Task
    events: list[Event]
    jobs: list[Job]

    @classmethod
    def read(cls, store: Store, task_id: str) -> Snapshot:
        """Read the task, its events and its jobs."""
        return cls(store.get_task(task_id), store.events(task_id), store.task_jobs(task_id))

    def job(self, event: Event) -> Job | None:
        """The job whose verdict an event records."""
        return next((j for j in self.jobs if j.id == event.job_id), None)


def who(producer: Producer, backend: str) -> str:
    """A producer and what it is: code, or an agent of some backend."""
    return f"{producer} (agent: {backend})" if producer.is_llm else f"{producer} (code)"


# The verdict values that do not pass their gate.
NOT_PASSING = frozenset({"FAIL", "FAILED", "CHANGES_REQUESTED", "BLOCKED", "UNHEALTHY", "INVALID"})


def outcome(event: Event) -> str:
    """passed, failed or blocked, for the mark in front of a verdict."""
    if event.to_stage == "blocked":
        return "blocked"
    return "failed" if event.verdict in NOT_PASSING else "passed"


def event_line(event: Event, snapshot: Snapshot, backend: str) -> Text:
    """One verdict as a line: round, stage, verdict, producer, time."""
    mark, style = MARKS[outcome(event)]
    job = snapshot.job(event)
    took = job.finished_at - job.started_at if job and job.finished_at and job.started_at else None
    seconds = f"{took.total_seconds():5.1f}s" if took is not None else "      "
    return Text.assemble(
        (f" {mark} ", style),
        f"round {event.round}  ",
        (f"{event.from_stage:<15}", "bold"),
        (f"{event.verdict or '':<18}", style),
        f"{who(event.producer, backend):<34}",
        (seconds, "dim"),
        (f"  -> {event.to_stage}", "dim"),
    )


def render(snapshot: Snapshot, backend: str) -> RenderableType:
    """The live view: every verdict so far, and what runs now."""
    lines: list[RenderableType] = [
        event_line(e, snapshot, backend) for e in snapshot.events if e.from_stage is not None
    ]
    live = next((j for j in reversed(snapshot.jobs) if j.status is JobStatus.RUNNING), None)
    if live is not None:
        lines.append(Text(f" … round {live.round}  {live.stage} running", style="cyan"))
    deferred = next((j for j in reversed(snapshot.jobs) if j.status is JobStatus.DEFERRED), None)
    if deferred is not None:
        lines.append(
            Text(f" … {deferred.stage} deferred: {deferred.error_message}", style="yellow")
        )
    return Group(*lines)


def print_summary(console: Console, rows: list[tuple[str, str]]) -> None:
    """A summary: one line per fact, the key in bold (long lines wrap, nothing is padded)."""
    for key, value in rows:
        console.print(Text.assemble(("  " + key.ljust(10), "bold"), "  ", value))


def print_event_lines(console: Console, snapshot: Snapshot, shown: int, backend: str) -> int:
    """Print the verdicts not printed yet (for output that is not a terminal)."""
    verdicts = [e for e in snapshot.events if e.from_stage is not None]
    for event in verdicts[shown:]:
        console.print(event_line(event, snapshot, backend))
    return len(verdicts)
