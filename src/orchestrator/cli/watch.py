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
from orchestrator.pipeline.stages import STAGE_ORDER, TaskState
from orchestrator.store import Event, Job, Repo, Task
from orchestrator.store.records import LIVE_JOB_STATUSES

REFRESH_S = 0.5


def stage_strip(task: Task, repo: Repo, events: list[Event], live: Job | None) -> Text:
    """One line: each stage with a mark for where the task is and where it has been."""
    passed = {
        e.from_stage for e in events if e.from_stage and e.to_stage not in ("blocked", "failed")
    }
    strip = Text()
    for stage in STAGE_ORDER:
        if strip:
            strip.append(" → ", style="dim")
        if stage in repo.skip_stages:
            strip.append(stage, style="dim strike")
        elif stage == task.stage and task.state is TaskState.ACTIVE:
            status = live.status if live is not None else "queued"
            strip.append(f"{stage} ({status})", style="bold cyan")
        elif stage == task.stage and task.state is not TaskState.DONE:
            strip.append(f"{stage} ({task.state})", style=STATE_STYLE[task.state])
        elif stage in passed:
            strip.append(stage, style="green")
        else:
            strip.append(stage, style="dim")
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
    parts: list[RenderableType] = [header, stage_strip(task, repo, events, live), table]
    if task.reason:
        parts.append(Text(f"reason: {task.reason}", style="yellow"))
    return Group(*parts)


@click.command("watch")
@click.argument("task_id")
@pass_app
def watch(app: AppContext, task_id: str) -> None:
    """Follow a task's stages live until it is done, failed, cancelled or blocked."""
    store = app.store
    task = store.get_task(check_task_id(task_id))
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
