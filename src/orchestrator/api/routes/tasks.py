"""Tasks: submit, list, detail with history, artifacts (raw and rendered), job logs, cancel,
resume, retry, approve and reject."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from orchestrator import joblogs
from orchestrator.api.models import Approval, Rejection, TaskCreate
from orchestrator.api.render import markdown_html
from orchestrator.api.security import Writer
from orchestrator.api.state import ApiState, State, server_exiting
from orchestrator.control import (
    approve_task,
    cancel_task,
    reject_task,
    resume_task,
    retry_task,
    waiting_for,
)
from orchestrator.documents import artifact_document, job_document, task_document
from orchestrator.errors import NotFound
from orchestrator.intake import submit_task
from orchestrator.pipeline.names import ARTIFACT_NAME, REPO_NAME, REPO_NAME_MAX, TASK_ID
from orchestrator.pipeline.stages import Stage, TaskState
from orchestrator.redact import StreamRedactor, redact
from orchestrator.transport.turns import ReadableBytes, TurnReader
from orchestrator.workspace.changes import branch_changes

router = APIRouter(prefix="/tasks", tags=["tasks"])
TaskIdPath = Annotated[str, Path(pattern=f"^{TASK_ID.pattern}$", description="A task id")]
ArtifactPath = Annotated[str, Path(pattern=f"^{ARTIFACT_NAME.pattern}$")]
LOG_LIMIT = 1_000_000  # bytes of a job log served at most (its tail)


def _detail(state: ApiState, task_id: str) -> dict[str, Any]:
    task = state.store.get_task(task_id)
    names = state.store.artifact_names([task.id])[task.id]
    document = task_document(
        task,
        names,
        state.store.events(task.id),
        secrets=state.secrets,
        versions=state.store.artifact_versions(task.id),
    )
    return {**document, "waits_for": waiting_for(state.store, state.settings, task)}


@router.post("", status_code=201, dependencies=[Writer], summary="Submit a task")
def create_task(body: TaskCreate, state: State) -> dict[str, Any]:
    """Create a task in its first stage (branch, worktree, 01-task.md)."""
    task = submit_task(
        state.store,
        state.settings.home,
        body.repo,
        body.title,
        body.description,
        secrets=state.secrets,
    )
    return _detail(state, task.id)


@router.get("", summary="List tasks")
def list_tasks(
    state: State,
    task_state: Annotated[TaskState | None, Query(alias="state")] = None,
    stage: Stage | None = None,
    repo: Annotated[
        str | None, Query(pattern=f"^{REPO_NAME.pattern}$", max_length=REPO_NAME_MAX)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Tasks, oldest first, filtered by state, stage and repo; paginated."""
    store = state.store
    repo_id = None
    if repo is not None:
        try:
            repo_id = store.get_repo(repo).id
        except NotFound:
            return {"tasks": [], "total": 0, "limit": limit, "offset": offset}
    tasks = store.list_tasks(state=task_state, stage=stage, repo=repo, limit=limit, offset=offset)
    names = store.artifact_names([t.id for t in tasks])
    secrets = state.secrets
    return {
        "tasks": [task_document(t, names[t.id], secrets=secrets) for t in tasks],
        "total": store.count_tasks(state=task_state, stage=stage, repo_id=repo_id),
        "limit": limit,
        "offset": offset,
    }


@router.get("/{task_id}", summary="A task with its stage history")
def get_task(task_id: TaskIdPath, state: State) -> dict[str, Any]:
    """The task, its events (oldest first) and its artifact names."""
    return _detail(state, task_id)


@router.get("/{task_id}/artifacts", summary="Every stored version of every artifact")
def list_artifacts(task_id: TaskIdPath, state: State) -> list[dict[str, Any]]:
    """Versions, oldest first."""
    state.store.get_task(task_id)
    return [artifact_document(a) for a in state.store.artifact_versions(task_id)]


@router.get(
    "/{task_id}/artifacts/{name}", response_class=PlainTextResponse, summary="An artifact, raw"
)
def artifact_raw(
    task_id: TaskIdPath,
    name: ArtifactPath,
    state: State,
    round: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> PlainTextResponse:
    """The stored text, byte for byte (the latest version, or that of a round)."""
    artifact = state.store.get_artifact(task_id, name, round)
    return PlainTextResponse(redact(artifact.text, state.secrets), media_type="text/markdown")


@router.get(
    "/{task_id}/artifacts/{name}/rendered",
    response_class=HTMLResponse,
    summary="An artifact rendered as HTML",
)
def artifact_rendered(
    task_id: TaskIdPath,
    name: ArtifactPath,
    state: State,
    round: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> HTMLResponse:
    """The Markdown as HTML (raw HTML in it is escaped)."""
    artifact = state.store.get_artifact(task_id, name, round)
    return HTMLResponse(markdown_html(redact(artifact.text, state.secrets)))


@router.get("/{task_id}/jobs", summary="The task's jobs")
def list_jobs(task_id: TaskIdPath, state: State) -> list[dict[str, Any]]:
    """Every job and attempt outcome, oldest first."""
    state.store.get_task(task_id)
    return [job_document(j) for j in state.store.task_jobs(task_id)]


@router.get("/{task_id}/changes", summary="What the task's branch changes")
def changes(task_id: TaskIdPath, state: State) -> dict[str, Any]:
    """The branch's commits and diff since it left the default branch (secrets masked; the
    diff's first megabyte)."""
    task = state.store.get_task(task_id)
    found = branch_changes(state.settings.home, state.store.get_repo(task.repo), task)
    return {
        "base": found.base,
        "head": found.head,
        "commits": [
            {"sha": c.sha, "subject": redact(c.subject, state.secrets), "author": c.author}
            for c in found.commits
        ],
        "diff": redact(found.diff, state.secrets),
        "truncated": found.truncated,
    }


@router.get(
    "/{task_id}/jobs/{job_id}/log",
    response_class=PlainTextResponse,
    summary="A job's log, also while it runs",
)
def job_log(
    task_id: TaskIdPath,
    job_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    state: State,
    follow: Annotated[bool, Query(description="Stream it as it grows, until the job ends")] = False,
    readable: Annotated[
        bool, Query(description="An agent's JSON events as one line per turn")
    ] = False,
) -> Response:
    """The output of the job's current attempt (its tail when it is long), secrets masked;
    with `follow`, streamed as it is written until the job ends; with `readable`, Claude
    Code's and Codex's events as one line per turn."""
    job = next((j for j in state.store.task_jobs(task_id) if j.id == job_id), None)
    if job is None:
        raise NotFound(f"task {task_id} has no job {job_id}")
    home = state.settings.home
    logs = joblogs.attempt_logs(home, job)
    if not logs:  # nothing to follow yet either: a client asks again once it runs
        waiting = "has not started" if job.status in ("queued", "deferred") else "has no log"
        raise NotFound(f"job {job_id} {waiting}")
    if follow:
        return StreamingResponse(
            _followed(home, job.id, state, readable), media_type="text/plain; charset=utf-8"
        )
    data = joblogs.last_bytes(logs, LOG_LIMIT)
    text = redact(data.decode("utf-8", "replace"), state.secrets)
    if readable:
        reader = TurnReader()
        text = reader.feed(text) + reader.flush()
    return PlainTextResponse(text)


async def _followed(
    home: FilePath, job_id: int, state: ApiState, readable: bool
) -> AsyncIterator[bytes]:
    """The job's log as it grows, until the job ends or the server stops. Async, so that a
    follower holds no thread of the server's pool while it waits."""
    tail, redactor = joblogs.LogTail(home), StreamRedactor(state.secrets)
    turns = ReadableBytes() if readable else None
    while not server_exiting():
        job = await anyio.to_thread.run_sync(state.store.get_job, job_id)
        over = joblogs.ended(job)  # read before the files: nothing written after it is missed
        data = await anyio.to_thread.run_sync(tail.read, job)
        if data:
            masked = redactor.feed(data)
            yield turns.feed(masked) if turns else masked
        if over:
            break
        await anyio.sleep(joblogs.FOLLOW_POLL_S)
    rest = redactor.flush()
    yield turns.feed(rest) + turns.flush() if turns else rest


@router.post("/{task_id}/cancel", dependencies=[Writer], summary="Cancel a task")
def cancel(task_id: TaskIdPath, state: State) -> dict[str, Any]:
    """Cancel the task; its running job is killed at once."""
    cancel_task(state.store, state.settings, task_id)
    return _detail(state, task_id)


@router.post("/{task_id}/resume", dependencies=[Writer], summary="Resume a blocked task")
def resume(task_id: TaskIdPath, state: State) -> dict[str, Any]:
    """Send a blocked task back into its stage."""
    resume_task(state.store, state.settings, task_id)
    return _detail(state, task_id)


@router.post("/{task_id}/retry", dependencies=[Writer], summary="Retry a failed task")
def retry(task_id: TaskIdPath, state: State) -> dict[str, Any]:
    """Give a failed task a new development round with a fresh budget of returns."""
    retry_task(state.store, state.settings, task_id)
    return _detail(state, task_id)


@router.post(
    "/{task_id}/approve", dependencies=[Writer], summary="Pass a stage that waits for a person"
)
def approve(task_id: TaskIdPath, body: Approval, state: State) -> dict[str, Any]:
    """A person's passing verdict on the stage the task waits in (409 when none waits)."""
    approve_task(state.store, state.settings, task_id, body.note)
    return _detail(state, task_id)


@router.post(
    "/{task_id}/reject", dependencies=[Writer], summary="Fail a stage that waits for a person"
)
def reject(task_id: TaskIdPath, body: Rejection, state: State) -> dict[str, Any]:
    """A person's failing verdict, with its reason, on the stage the task waits in."""
    reject_task(state.store, state.settings, task_id, body.reason)
    return _detail(state, task_id)
