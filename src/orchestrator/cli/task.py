"""`orch task`: submit tasks and follow them."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import STATE_STYLE, console, emit_json, emit_raw, notice
from orchestrator.control import (
    approve_task,
    cancel_task,
    reject_task,
    resume_task,
    retry_task,
    waiting_for,
)
from orchestrator.documents import judged_commits, task_document
from orchestrator.errors import InputError
from orchestrator.intake import submit_task
from orchestrator.pipeline.names import check_artifact_name, check_repo_name, check_task_id
from orchestrator.pipeline.stages import STAGE_ORDER, Stage, TaskState
from orchestrator.redact import secret_values
from orchestrator.store import Task
from orchestrator.store.base import utcnow
from orchestrator.story import task_story

# Rounds are database integers; a larger number names no round (and would overflow).
MAX_ROUND = 2**31 - 1


@click.group()
def task() -> None:
    """Submit tasks and follow them through the pipeline."""


def _read_description(text: str | None, file: Path | None) -> str:
    if text is not None and file is not None:
        raise click.UsageError("give the description with -d or -f, not both")
    if file is None:
        return text or ""
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the description from {file}: {exc}") from None


@task.command("add")
@click.argument("repo")
@click.argument("title")
@click.option("-d", "--description", "text", help="What the task is about.")
@click.option(
    "-f",
    "--file",
    type=click.Path(path_type=Path),
    help="Read the description from a file ('-' for stdin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new task as JSON.")
@pass_app
def task_add(
    app: AppContext, repo: str, title: str, text: str | None, file: Path | None, as_json: bool
) -> None:
    """Submit a task on REPO; prints its id."""
    description = _read_description(text, file)
    secrets = secret_values(app.settings)
    created = submit_task(app.store, app.settings.home, repo, title, description, secrets=secrets)
    if as_json:
        names = app.store.artifact_names([created.id])[created.id]
        emit_json(task_document(created, names, secrets=secrets))
        return
    notice(f"task {created.id} is in {created.stage} (branch {created.branch})")
    click.echo(created.id)


@task.command("list")
@click.option("--state", type=click.Choice([s.value for s in TaskState]))
@click.option("--stage", type=click.Choice([s.value for s in STAGE_ORDER]))
@click.option("--repo")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_app
def task_list(
    app: AppContext, state: str | None, stage: str | None, repo: str | None, as_json: bool
) -> None:
    """List tasks, oldest first."""
    if repo is not None:  # a filter on a repo that cannot exist is a mistake, not "no match"
        app.store.get_repo(check_repo_name(repo))
    tasks = app.store.list_tasks(
        state=TaskState(state) if state else None,
        stage=Stage(stage) if stage else None,
        repo=repo,
    )
    if as_json:
        names = app.store.artifact_names([t.id for t in tasks])
        secrets = secret_values(app.settings)
        emit_json([task_document(t, names[t.id], secrets=secrets) for t in tasks])
        return
    if not tasks:
        notice(
            "no tasks" + (" match" if state or stage or repo else " yet: orch task add REPO TITLE")
        )
        return
    table = Table("id", "repo", "stage", "state", "round", "title", box=None)
    for t in tasks:
        table.add_row(t.id, t.repo, t.stage, _state(t), str(t.round), t.title)
    console.print(table)


@task.command("show")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
@pass_app
def task_show(app: AppContext, task_id: str, as_json: bool) -> None:
    """Show a task with its stage history and artifacts."""
    shown = app.store.get_task(check_task_id(task_id))
    events = app.store.events(shown.id)
    artifacts = app.store.artifact_names([shown.id])[shown.id]
    versions = app.store.artifact_versions(shown.id)
    waits = waiting_for(app.store, app.settings, shown)
    if as_json:
        secrets = secret_values(app.settings)
        document = task_document(shown, artifacts, events, secrets=secrets, versions=versions)
        emit_json({**document, "waits_for": waits})
        return
    console.print(f"[bold]{shown.id}[/]  {shown.title}")
    console.print(f"repo {shown.repo}  branch {shown.branch}  round {shown.round}")
    console.print(f"stage {shown.stage}  state {_state(shown)}")
    if waits:
        console.print(
            f"waits for a person: orch task approve {shown.id} [--note TEXT], "
            f"or orch task reject {shown.id} --reason TEXT"
        )
    story = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    jobs = app.store.task_jobs(shown.id)
    for key, value in task_story(app.store, shown, events, jobs, utcnow(), versions):
        story.add_row(f"[bold]{key}[/]", value)
    console.print(story)
    table = Table("at", "from", "to", "verdict", "by", "round", box=None)
    for e in events:
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.from_stage or "-",
            e.to_stage,
            e.verdict or "-",
            e.producer,
            str(e.round),
        )
    console.print(table)
    for judged in judged_commits(versions):
        console.print(
            f"round {judged['round']} {judged['producer']}: tested "
            f"{judged['tested_commit'][:12]} on base {judged['base_commit'][:12]}"
        )


@task.command("cancel")
@click.argument("task_id")
@pass_app
def task_cancel(app: AppContext, task_id: str) -> None:
    """Cancel a task; its running job is killed at once."""
    cancelled = cancel_task(app.store, app.settings, task_id)
    notice(f"task {cancelled.id} cancelled in {cancelled.stage}")


@task.command("resume")
@click.argument("task_id")
@pass_app
def task_resume(app: AppContext, task_id: str) -> None:
    """Send a blocked task back into its stage (a worker picks it up)."""
    resumed = resume_task(app.store, app.settings, task_id)
    notice(f"task {resumed.id} is back in {resumed.stage} (round {resumed.round})")


@task.command("retry")
@click.argument("task_id")
@pass_app
def task_retry(app: AppContext, task_id: str) -> None:
    """Give a failed task a new development round, with what failed it as feedback and a
    fresh ORCH_MAX_DEV_RETRIES."""
    retried = retry_task(app.store, app.settings, task_id)
    notice(f"task {retried.id} is back in {retried.stage} (round {retried.round})")


@task.command("approve")
@click.argument("task_id")
@click.option("--note", default="", help="What the person checked or did, kept in the artifact.")
@pass_app
def task_approve(app: AppContext, task_id: str, note: str) -> None:
    """Pass the stage a task waits in for a person (a runner that is off, no LLM fallback)."""
    approved = approve_task(app.store, app.settings, task_id, note)
    notice(f"task {approved.id}: {_where(approved)}")


@task.command("reject")
@click.argument("task_id")
@click.option("--reason", required=True, help="Why; kept in the artifact as the feedback.")
@pass_app
def task_reject(app: AppContext, task_id: str, reason: str) -> None:
    """Fail the stage a task waits in for a person; it goes where that stage's failures go."""
    rejected = reject_task(app.store, app.settings, task_id, reason)
    notice(f"task {rejected.id}: {_where(rejected)}")


def _where(task: Task) -> str:
    if task.state is TaskState.ACTIVE:
        return f"on to {task.stage} (round {task.round})"
    return f"{task.state} in {task.stage}" + (f": {task.reason}" if task.reason else "")


@task.command("artifact")
@click.argument("task_id")
@click.argument("name")
@click.option(
    "--round", "round_", type=click.IntRange(1, MAX_ROUND), help="The version of that round."
)
@pass_app
def task_artifact(app: AppContext, task_id: str, name: str, round_: int | None) -> None:
    """Print an artifact's stored text, byte for byte (the latest version by default)."""
    artifact = app.store.get_artifact(check_task_id(task_id), check_artifact_name(name), round_)
    emit_raw(artifact.text)


def _state(t: Task) -> str:
    return f"[{STATE_STYLE[t.state]}]{t.state}[/]"
