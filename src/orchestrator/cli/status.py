"""`orch queue` and `orch status`: what runs, what waits, what needs a person."""

from __future__ import annotations

from datetime import datetime

import click
from rich.table import Table

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import console, emit_json
from orchestrator.documents import alert_document, queue_document, status_document
from orchestrator.pipeline.stages import STAGE_ORDER, TaskState
from orchestrator.store.base import utcnow


def _ago(when: datetime | None) -> str:
    if when is None:
        return "-"
    seconds = (utcnow() - when).total_seconds()
    return f"{seconds:.0f}s ago" if seconds >= 0 else f"in {-seconds:.0f}s"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def queue(app: AppContext, as_json: bool) -> None:
    """Running, queued and deferred jobs, and each repo's serial gate."""
    snapshot = app.store.queue()
    if as_json:
        emit_json(queue_document(snapshot))
        return
    table = Table("job", "task", "repo", "stage", "status", "attempt", "since", "note", box=None)
    for group in (snapshot.running, snapshot.queued, snapshot.deferred):
        for item in group:
            job = item.job
            when = job.not_before if job.status == "deferred" else job.started_at or job.created_at
            note = (
                f"{job.error_kind}: {job.error_message or ''}" if job.status == "deferred" else ""
            )
            table.add_row(
                str(job.id),
                job.task_id,
                item.repo,
                job.stage,
                job.status,
                str(job.attempt),
                _ago(when),
                note[:60],
            )
    console.print(table if table.row_count else "no live jobs")
    for repo, gate in snapshot.serial_gate.items():
        if gate.holder or gate.waiting:
            waiting = ", ".join(gate.waiting) or "nobody"
            console.print(
                f"serial gate {repo}: held by {gate.holder or 'nobody'}, waiting: {waiting}"
            )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Tasks by state and stage, blocked tasks and why, open alerts, workers."""
    store = app.store
    document = status_document(
        store.counts(),
        store.queue(),
        store.list_alerts(open_only=True),
        store.list_workers(running_only=True),
        store.list_tasks(state=TaskState.BLOCKED),
    )
    if as_json:
        emit_json(document)
        return
    states = document["tasks"]["by_state"]
    console.print("tasks: " + (", ".join(f"{n} {s}" for s, n in states.items()) or "none"))
    stages = document["tasks"]["by_stage"]
    if stages:
        console.print(
            "active: " + ", ".join(f"{stages[s]} in {s}" for s in STAGE_ORDER if s in stages)
        )
    console.print(
        f"jobs: {document['jobs']['running']} running, {document['jobs']['queued']} "
        f"queued, {document['jobs']['deferred']} deferred"
    )
    for blocked in document["blocked"]:
        console.print(
            f"[yellow]blocked[/] {blocked['id']} in {blocked['stage']}: {blocked['reason']}"
        )
    for alert in store.list_alerts(open_only=True)[:10]:
        shown = alert_document(alert)
        console.print(f"[red]alert[/] #{shown['id']} {shown['kind']}: {shown['message']}")
    for worker in document["workers"]:
        console.print(f"worker {worker['id']} on {worker['host']} (pid {worker['pid']})")
