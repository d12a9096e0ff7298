"""The web dashboard at `/`: server-rendered pages that update live.

Every page is a layout around a fragment. The page's script listens to `/ui/events` (server-sent
events: one `change` event whenever `Store.change_token()` moves) and, on a change, fetches the
page's fragment from `/ui/fragments/...` and swaps it in: no reload, no framework. Everything it
needs (templates, script, stylesheet) ships in the package: it works offline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, StreamingResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.staticfiles import StaticFiles

from orchestrator.api import dashboard_views as views
from orchestrator.api.state import ApiState, State, server_exiting
from orchestrator.errors import StoreError
from orchestrator.pipeline.names import TASK_ID
from orchestrator.store import Store

HERE = FilePath(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"

POLL_S = 0.5  # how often the event stream looks for a change
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
# A stream ends after this long and the browser reconnects at once: the server's graceful
# shutdown (which waits for open responses) never waits longer than this for a dashboard.
STREAM_MAX_S = 60.0
RETRY_MS = 1000  # how soon EventSource reconnects

router = APIRouter(include_in_schema=False)
TaskIdPath = Annotated[str, Path(pattern=f"^{TASK_ID.pattern}$", description="A task id")]

templates = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["when"] = views.when
templates.filters["duration"] = views.duration


def static_files() -> StaticFiles:
    """The dashboard's script and stylesheet, served from the package at /static."""
    return StaticFiles(directory=STATIC_DIR)


def change_token(store: Store) -> str:
    """A short token that changes whenever anything a page shows may have changed."""
    return hashlib.sha256(store.change_token().encode()).hexdigest()[:16]


def _html(template: str, **context: Any) -> HTMLResponse:
    body = templates.get_template(template).render(**context)
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


def _page(state: ApiState, template: str, nav: str, fragment: str, **context: Any) -> HTMLResponse:
    # The token is read before the content: a change in between makes the first event
    # differ from it, and the page fetches its fragment again.
    token = change_token(state.store)
    return _html(template, nav=nav, fragment_url=fragment, token=token, **context)


# --- pages and their fragments --------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def board_page(state: State) -> HTMLResponse:
    """Tasks as a board by stage, and the verdicts by producer."""
    return _page(state, "board.html", "board", "/ui/fragments/board", **views.board_context(state))


@router.get("/ui/fragments/board", response_class=HTMLResponse)
def board_fragment(state: State) -> HTMLResponse:
    """The inside of the board page."""
    return _html("_board.html", **views.board_context(state))


@router.get("/ui/tasks/{task_id}", response_class=HTMLResponse)
def task_page(task_id: TaskIdPath, state: State) -> HTMLResponse:
    """A task: its stages, timeline, jobs with their logs, and artifacts."""
    context = views.task_context(state, task_id)
    return _page(state, "task.html", "board", f"/ui/fragments/task/{task_id}", **context)


@router.get("/ui/fragments/task/{task_id}", response_class=HTMLResponse)
def task_fragment(task_id: TaskIdPath, state: State) -> HTMLResponse:
    """The inside of a task page."""
    return _html("_task.html", **views.task_context(state, task_id))


@router.get("/ui/queue", response_class=HTMLResponse)
def queue_page(state: State) -> HTMLResponse:
    """Running, queued and deferred jobs, serial gates, runners."""
    return _page(state, "queue.html", "queue", "/ui/fragments/queue", **views.queue_context(state))


@router.get("/ui/fragments/queue", response_class=HTMLResponse)
def queue_fragment(state: State) -> HTMLResponse:
    """The inside of the queue page."""
    return _html("_queue.html", **views.queue_context(state))


@router.get("/ui/alerts", response_class=HTMLResponse)
def alerts_page(state: State) -> HTMLResponse:
    """Alerts, with a button to acknowledge the open ones."""
    context = views.alerts_context(state)
    return _page(state, "alerts.html", "alerts", "/ui/fragments/alerts", **context)


@router.get("/ui/fragments/alerts", response_class=HTMLResponse)
def alerts_fragment(state: State) -> HTMLResponse:
    """The inside of the alerts page."""
    return _html("_alerts.html", **views.alerts_context(state))


# --- live updates ---------------------------------------------------------------------------


async def _changes(store: Store) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    last: str | None = None
    started = sent = time.monotonic()
    while time.monotonic() - started < STREAM_MAX_S and not server_exiting():
        try:
            token: str | None = await anyio.to_thread.run_sync(change_token, store)
        except StoreError:
            token = None  # the database is away for a moment: say nothing, try again
        now = time.monotonic()
        if token is not None and token != last:
            last, sent = token, now
            yield f"event: change\ndata: {token}\n\n"
        elif now - sent >= KEEPALIVE_S:
            sent = now
            yield ": keep-alive\n\n"
        await anyio.sleep(POLL_S)


@router.get("/ui/events")
async def events(state: State) -> StreamingResponse:
    """Server-sent events: `change` (data: the change token) at once, then on every change;
    a comment line every KEEPALIVE_S."""
    return StreamingResponse(
        _changes(state.store),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
