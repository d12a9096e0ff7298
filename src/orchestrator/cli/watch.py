"""`orch task watch`: a task's stages, live."""

from __future__ import annotations

import time

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import STATE_STYLE, console
from orchestrator.pipeline.names import check_task_id
from orchestrator.pipeline.progress import StageStatus, stage_progress
from orchestrator.pipeline.stages import TaskState
from orchestrator.store import Event, Job, Repo, Store, Task
from orchestrator.store.records import LIVE_JOB_STATUSES

REFRESH_S = 0.5


# How each stage status is drawn (the dashboard draws the same statuses: pipeline/progress.py).
MARK_STYLE = {
    StageStatus.PASSED: "green",
    StageStatus.CURRENT: "bold cyan",
    StageStatus.PENDING: "dim",
    StageStatus.SKIPPED: "dim strike",
}


def stage_strip(task: Task, repo: Repo, live: Job | None) -> Text:
    """One line: each stage, marked with how it stands for the task."""
    strip = Text()
    for mark in stage_progress(task.stage, task.state, repo.skip_stages, task.pipeline):
        if strip:
            strip.append(" → ", style="dim")
        if mark.status is StageStatus.CURRENT:
            status = live.status if live is not None else "queued"
            strip.append(f"{mark.stage} ({status})", style=MARK_STYLE[mark.status])
        elif mark.status in MARK_STYLE:
            strip.append(mark.stage, style=MARK_STYLE[mark.status])
        else:  # where the task stopped: blocked, failed or cancelled
            strip.append(f"{mark.stage} ({task.state})", style=STATE_STYLE[task.state])
    return strip


def render(task: Task, repo: Repo, events: list[Event], jobs: list[Job]) -> RenderableType:
    """The whole watch view."""
    live = next((j for j in reversed(jobs) if j.status in LIVE_JOB_STATUSES), None)
    header = Text.assemble(
        (task.id, "bold"),
        f"  {task.title}  round {task.round}  ",
        (task.state.value, STATE_STYLE[task.state]),
    )
    table = Table("at", "from", "to", "verdict", "by", "round", box=None)
    for e in events:
        table.add_row(
            e.at.strftime("%H:%M:%S"),
            e.from_stage or "-",
            e.to_stage,
            e.verdict or "-",
            e.producer,
            str(e.round),
        )
    parts: list[RenderableType] = [header, stage_strip(task, repo, live), table]
    if task.reason:
        parts.append(Text(f"reason: {task.reason}", style="yellow"))
    return Group(*parts)


@click.command("watch")
@click.argument("task_id")
@pass_app
def watch(app: AppContext, task_id: str) -> None:
    """Follow a task's stages live until it is done, failed, cancelled or blocked.

    On a terminal, a live view; otherwise (piped, in a log) one line per stage move, printed
    as it happens.
    """
    store = app.store
    task = store.get_task(check_task_id(task_id))
    if not console.is_terminal:
        _lines(store, task)
        return
    repo = store.get_repo(task.repo)

    def snapshot() -> tuple[Task, RenderableType]:
        current = store.get_task(task.id)
        return current, render(current, repo, store.events(task.id), store.task_jobs(task.id))

    current, view = snapshot()
    with Live(view, console=console, refresh_per_second=4, transient=False) as live:
        while current.state is TaskState.ACTIVE:
            time.sleep(REFRESH_S)
            current, view = snapshot()
            live.update(view)


def move_line(event: Event) -> str:
    """One stage move, as a line of a log."""
    verdict = f" {event.verdict}" if event.verdict else ""
    return (
        f"{event.at.strftime('%H:%M:%S')} {event.from_stage or '(new)'} -> {event.to_stage}"
        f"{verdict} by {event.producer} (round {event.round})"
    )


def _lines(store: Store, task: Task) -> None:
    printed = 0
    while True:
        current = store.get_task(task.id)  # read first: no move is missed after the last one
        events = store.events(task.id)
        for event in events[printed:]:
            click.echo(move_line(event))
        printed = len(events)
        if current.state is not TaskState.ACTIVE:
            reason = f": {current.reason}" if current.reason else ""
            click.echo(f"task {current.id} {current.state}{reason}")
            return
        time.sleep(REFRESH_S)
