"""`orch task logs`: a task's job output, and following it as the agents and suites print."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from orchestrator import joblogs
from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import notice
from orchestrator.errors import NotFound
from orchestrator.pipeline.names import check_task_id
from orchestrator.pipeline.stages import STAGE_ORDER, TaskState
from orchestrator.redact import StreamRedactor, secret_values
from orchestrator.store import Job, Store
from orchestrator.transport.turns import ReadableBytes

MAX_ROUND = 2**31 - 1
NEXT_JOB_POLL_S = 0.2


@click.command("logs")
@click.argument("task_id")
@click.option("-f", "--follow", is_flag=True, help="Print lines as they come, job after job.")
@click.option("--stage", type=click.Choice([s.value for s in STAGE_ORDER]), help="That stage's.")
@click.option("--round", "round_", type=click.IntRange(1, MAX_ROUND), help="That round's.")
@click.option("--raw", is_flag=True, help="Claude Code's and Codex's events as raw JSON.")
@pass_app
def logs(
    app: AppContext,
    task_id: str,
    follow: bool,
    stage: str | None,
    round_: int | None,
    raw: bool,
) -> None:
    """Print the log of a task's latest job (or of a stage and round), secrets masked; an
    agent's turns one line each (what it said, which tool it called), unless --raw.

    With -f, follow it while it runs, then the task's next jobs, until the task is done,
    failed, cancelled or blocked.
    """
    store, home = app.store, app.settings.home
    task = store.get_task(check_task_id(task_id))
    job = joblogs.pick_job(store.task_jobs(task.id), stage, round_)
    if job is None:
        raise NotFound(f"task {task.id} has no job" + (f" at {stage}" if stage else ""))
    redactor = StreamRedactor(secret_values(app.settings))
    while True:
        notice(f"── job {job.id}: {job.stage}, round {job.round}, attempt {job.attempt}")
        chunks = joblogs.follow(home, job.id, store.get_job) if follow else _written(home, job)
        turns = None if raw else ReadableBytes()
        for chunk in chunks:
            masked = redactor.feed(chunk)
            _out(turns.feed(masked) if turns else masked)
        rest = redactor.flush()
        _out(turns.feed(rest) + turns.flush() if turns else rest)
        if not follow or stage is not None or round_ is not None:
            return
        following = _next_job(store, task.id, job)
        if following is None:
            return
        job = following


def _out(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()  # as it comes: someone is following


def _written(home: Path, job: Job) -> list[bytes]:
    return [joblogs.LogTail(home).read(job)]


def _next_job(store: Store, task_id: str, done: Job) -> Job | None:
    """The task's job after `done` (its next stage, or the same stage queued afresh), once
    there is one; None when the task stopped (done, failed, cancelled or blocked)."""
    while True:
        later = [j for j in store.task_jobs(task_id) if j.id > done.id]
        if later:
            return later[0]
        if store.get_task(task_id).state is not TaskState.ACTIVE:
            return None
        time.sleep(NEXT_JOB_POLL_S)
