"""GET /health, /status, /queue and /metrics."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from orchestrator.api.metrics import render_metrics
from orchestrator.api.state import State
from orchestrator.errors import StoreError
from orchestrator.overview import queue_report, status_report

router = APIRouter(tags=["system"])


@router.get("/health", summary="Liveness, version, database and worker")
def health(state: State) -> JSONResponse:
    """200 with status ok; 503 with status degraded when the database does not answer or
    when the service's worker cannot run jobs (dead, or cut off from the database)."""
    try:
        state.store.schema_revision()
        database = True
    except StoreError:
        database = False
    worker = state.worker_problem() if state.worker_problem is not None else None
    healthy = database and worker is None
    document = {
        "status": "ok" if healthy else "degraded",
        "version": state.version,
        "commit": state.commit,
        "started_at": state.started_at.isoformat(),
        "database": database,
        "worker": worker,
        "uptime_s": round(time.monotonic() - state.started_monotonic, 3),
    }
    return JSONResponse(document, status_code=200 if healthy else 503)


JSON_DOCUMENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}
}


@router.get(
    "/status",
    summary="Tasks by stage and state, jobs, alerts, workers, determinization",
    response_class=Response,
    responses=JSON_DOCUMENT,
)
async def status(state: State) -> Response:
    """The pipeline at a glance (computed at most once a second)."""
    body = await state.cache.get("status", lambda: status_report(state.store))
    return Response(body, media_type="application/json")


@router.get(
    "/queue",
    summary="Running, queued and deferred jobs, serial gates, runners",
    response_class=Response,
    responses=JSON_DOCUMENT,
)
async def queue(state: State) -> Response:
    """What runs and what waits (computed at most once a second)."""
    body = await state.cache.get("queue", lambda: queue_report(state.store, state.settings))
    return Response(body, media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: State) -> Response:
    """Prometheus text format."""
    body, content_type = render_metrics(state.store)
    return Response(body, media_type=content_type)
